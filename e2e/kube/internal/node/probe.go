package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ProbeKind names the three probes.
type ProbeKind string

const (
	Startup   ProbeKind = "Startup"
	Liveness  ProbeKind = "Liveness"
	Readiness ProbeKind = "Readiness"
)

// ExecFunc runs a command inside the container's namespaces and returns
// its exit code and output.
type ExecFunc func(ctx context.Context, argv []string) (int, string, error)

// Probe runs one probe once: httpGet (2xx/3xx succeeds), tcpSocket (a
// connection succeeds) from the host to the pod IP, exec (exit 0 succeeds)
// inside the pod.
func Probe(ctx context.Context, p *v1.Probe, c *v1.Container, podIP string, exec ExecFunc) (bool, string) {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		g := p.HTTPGet
		port, err := resolvePort(g.Port, c)
		if err != nil {
			return false, err.Error()
		}
		host := g.Host
		if host == "" {
			host = podIP
		}
		scheme := strings.ToLower(string(g.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), path)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err.Error()
		}
		for _, h := range g.HTTPHeaders {
			req.Header.Add(h.Name, h.Value)
		}
		req.Header.Set("User-Agent", "kube-probe/1.37")
		// The kubelet does not verify a probe's certificate either.
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
		resp, err := client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return true, ""
		}
		return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return false, err.Error()
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case p.Exec != nil:
		code, out, err := exec(ctx, p.Exec.Command)
		if err != nil {
			return false, err.Error()
		}
		if code != 0 {
			return false, fmt.Sprintf("command %q exited with %d: %s", p.Exec.Command, code, strings.TrimSpace(out))
		}
		return true, ""
	}
	return false, "probe type not supported by the node agent (httpGet, tcpSocket and exec are)"
}

func resolvePort(port intstr.IntOrString, c *v1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("port %q not found in container %s", port.StrVal, c.Name)
}

// ProbeCounter applies a probe's thresholds, as the kubelet's prober does:
// the result starts at its initial value (readiness and startup: failing,
// liveness: passing) and flips only after successThreshold successes or
// failureThreshold failures in a row.
type ProbeCounter struct {
	Success, Failure int32 // thresholds (the API server defaults them)
	Result           bool
	run              int32
	last             *bool
}

// Observe records one outcome and says whether Result changed.
func (pc *ProbeCounter) Observe(ok bool) bool {
	if pc.last != nil && *pc.last == ok {
		pc.run++
	} else {
		pc.run = 1
	}
	pc.last = &ok
	need := pc.Failure
	if ok {
		need = pc.Success
	}
	if ok != pc.Result && pc.run >= max(need, 1) {
		pc.Result = ok
		return true
	}
	return false
}
