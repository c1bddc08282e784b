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
	flag.StringVar(&a.Phase, "phase", "", "one or two")
	flag.StringVar(&a.State, "state", "", "file phase one writes and phase two reads")
	flag.BoolVar(&a.Debug, "debug", false, "the client library's debug logging")
	flag.Parse()
	if a.Bootstrap == "" || a.Topic == "" || a.Group == "" || a.State == "" || phaseCapabilities[a.Phase] == nil {
		fmt.Fprintln(os.Stderr, "usage: --bootstrap HOST:PORT --topic T --group G --phase one|two --state FILE [--debug]")
		os.Exit(2)
	}
	return a
}

// Main runs the phase and exits with the COMPAT line as the last stdout line.
func Main(args Args, client, version string, newAdapter func() (Adapter, error)) {
	r := newReport(client, version, args.Phase)
	logf("%s: phase %s against %s", version, args.Phase, args.Bootstrap)
	time.AfterFunc(phaseBudget, func() {
		r.mu.Lock()
		at := r.stepName
		r.mu.Unlock()
		r.emitAndExit(fmt.Sprintf("phase over its %s budget at: %s", phaseBudget, at))
	})
	r.step("phase "+args.Phase, r.capabilities, func() error {
		a, err := newAdapter()
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
