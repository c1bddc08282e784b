package scenario

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
)

// secureMessages is how many messages the security phase round-trips per listener.
const secureMessages = 20

// Security says how the adapter of the security phase connects to Args.Bootstrap.
type Security struct {
	// Kind is "sasl" (SASL_SSL with SCRAM-SHA-512 as User/Password) or "mtls" (SSL
	// with the client certificate, which TLS carries).
	Kind           string
	User, Password string
	// TLS trusts the CA of the broker's certificate (checked for the bootstrap host)
	// and, for "mtls", presents the client certificate.
	TLS *tls.Config
}

// secured is args for one secured listener: Bootstrap is that listener, Security how.
func secured(args Args, kind string) (Args, error) {
	bootstrap := args.SASLBootstrap
	if kind == "mtls" {
		bootstrap = args.MTLSBootstrap
	}
	if bootstrap == "" || args.CA == "" {
		return args, Failf("the security phase needs --%s-bootstrap and --ca", kind)
	}
	host, _, err := net.SplitHostPort(bootstrap)
	if err != nil {
		return args, fmt.Errorf("bootstrap %q: %w", bootstrap, err)
	}
	ca, err := os.ReadFile(args.CA)
	if err != nil {
		return args, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return args, Failf("no CA certificate in %s", args.CA)
	}
	sec := &Security{Kind: kind, TLS: &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}}
	if kind == "sasl" {
		if args.ScramUser == "" {
			return args, Failf("the security phase needs --scram-user and --scram-password")
		}
		sec.User, sec.Password = args.ScramUser, args.ScramPassword
	} else {
		cert, err := tls.LoadX509KeyPair(args.ClientCert, args.ClientKey)
		if err != nil {
			return args, fmt.Errorf("client certificate: %w", err)
		}
		sec.TLS.Certificates = []tls.Certificate{cert}
	}
	args.Bootstrap, args.Security = bootstrap, sec
	return args, nil
}

// phaseSecurity: sasl_scram and mtls, each secureMessages keyed messages produced to
// <topic>-<kind> and read back exactly, every client of the adapter connected over the
// secured listener.
func phaseSecurity(newAdapter func(Args) (Adapter, error), args Args, r *report) {
	for _, l := range []struct{ cap, kind, how string }{
		{"sasl_scram", "sasl", "SASL_SSL, SCRAM-SHA-512 as " + args.ScramUser},
		{"mtls", "mtls", "SSL with a client certificate (ssl.client.auth=required)"},
	} {
		r.step(l.cap, []string{l.cap}, func() error {
			sargs, err := secured(args, l.kind)
			if err != nil {
				return err
			}
			a, err := newAdapter(sargs)
			if err != nil {
				return err
			}
			defer a.Close()
			topic := args.Topic + "-" + l.kind
			acked, err := produce(a, topic, keyed(l.kind, secureMessages, 0), ProduceOptions{})
			if err != nil {
				return err
			}
			back, err := readTopic(a, topic)
			if err != nil {
				return err
			}
			if err := compare(l.kind+" round trip", back, byPosition(acked)); err != nil {
				return err
			}
			if err := checkOrder(l.kind+" round trip", back); err != nil {
				return err
			}
			r.passed(l.cap, fmt.Sprintf("%d messages produced and read back over %s", secureMessages, l.how))
			return nil
		})
	}
}
