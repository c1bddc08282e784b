package scenario

import (
	"flag"
	"fmt"
	"os"
	"time"
)

// ParseArgs reads the driver's flags (see CONTRACT.md).
func ParseArgs() Args {
	var a Args
	flag.StringVar(&a.Bootstrap, "bootstrap", "", "host:port")
	flag.StringVar(&a.Topic, "topic", "", "the scenario topic")
	flag.StringVar(&a.Group, "group", "", "the scenario group")
	flag.StringVar(&a.Phase, "phase", "", "one, two or security")
	flag.StringVar(&a.State, "state", "", "file phase one writes and phase two reads")
	flag.BoolVar(&a.Debug, "debug", false, "the client library's debug logging")
	// The security phase's listeners and credentials (CONTRACT.md).
	flag.StringVar(&a.SASLBootstrap, "sasl-bootstrap", "", "host:port of the SASL_SSL listener (SCRAM-SHA-512)")
	flag.StringVar(&a.MTLSBootstrap, "mtls-bootstrap", "", "host:port of the SSL listener that requires a client certificate")
	flag.StringVar(&a.CA, "ca", "", "PEM file of the CA that signed the broker's certificate")
	flag.StringVar(&a.ClientCert, "client-cert", "", "PEM file of the client certificate")
	flag.StringVar(&a.ClientKey, "client-key", "", "PEM file of the client certificate's key (PKCS#8)")
	flag.StringVar(&a.ScramUser, "scram-user", "", "SCRAM-SHA-512 user")
	flag.StringVar(&a.ScramPassword, "scram-password", "", "SCRAM-SHA-512 password")
	flag.Parse()
	if a.Bootstrap == "" || a.Topic == "" || a.Group == "" || a.State == "" || phaseCapabilities[a.Phase] == nil {
		fmt.Fprintln(os.Stderr, "usage: --bootstrap HOST:PORT --topic T --group G --phase one|two|security --state FILE [--debug]"+
			" [--sasl-bootstrap H:P --mtls-bootstrap H:P --ca F --client-cert F --client-key F --scram-user U --scram-password P]")
		os.Exit(2)
	}
	return a
}

// Main runs the phase and exits with the COMPAT line as the last stdout line.
// newAdapter makes the adapter for args; in the security phase it gets args with
// Bootstrap set to the secured listener and Security saying how to connect there.
func Main(args Args, client, version string, newAdapter func(args Args) (Adapter, error)) {
	r := newReport(client, version, args.Phase)
	logf("%s: phase %s against %s", version, args.Phase, args.Bootstrap)
	time.AfterFunc(phaseBudget, func() {
		r.mu.Lock()
		at := r.stepName
		r.mu.Unlock()
		r.emitAndExit(fmt.Sprintf("phase over its %s budget at: %s", phaseBudget, at))
	})
	r.step("phase "+args.Phase, r.capabilities, func() error {
		if args.Phase == "security" {
			phaseSecurity(newAdapter, args, r)
			return nil
		}
		a, err := newAdapter(args)
		if err != nil {
			return err
		}
		defer a.Close()
		for cap, why := range a.Lacks() {
			for _, c := range r.capabilities {
				if c == cap {
					r.notApplicable(cap, why)
				}
			}
		}
		if args.Phase == "one" {
			phaseOne(a, args, r)
		} else {
			phaseTwo(a, args, r)
		}
		return nil
	})
	r.emitAndExit("")
}
