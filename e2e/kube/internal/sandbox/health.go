package sandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// HealthClient speaks to every component's health URL: it trusts the sandbox
// CA and presents the admin certificate (the API server's /readyz answers
// anonymous requests only once its RBAC bootstrap is done).
func HealthClient(l Layout) (*http.Client, error) {
	caPEM, err := os.ReadFile(l.Cert("ca"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", l.Cert("ca"))
	}
	admin, err := tls.LoadX509KeyPair(l.Cert(Admin.Name), l.Key(Admin.Name))
	if err != nil {
		return nil, err
	}
	tlsConfig := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{admin}, MinVersion: tls.VersionTLS12}
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig},
	}, nil
}

// Check asks one health URL; nil means 200.
func Check(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// WaitHealthy polls the process's health URL until it answers 200. It gives
// up at once when the process exits (with the end of its log), when ctx ends
// (interrupt or timeout), and reports the last health error then.
func WaitHealthy(ctx context.Context, client *http.Client, p Proc) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if !p.Alive() {
			return fmt.Errorf("%s exited; end of %s:\n%s", p.Name, p.Log, tail(p.Log, 20))
		}
		if last = Check(client, p.Health); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy: %w (last check: %v); see %s", p.Name, ctx.Err(), last, p.Log)
		case <-tick.C:
		}
	}
}

// tail returns the last n lines of a log file, for error messages.
func tail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
