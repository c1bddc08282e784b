package node

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// serveKubeletAPI serves the part of the kubelet's API the sandbox needs on
// the node's address: /healthz (what `sandbox up` waits for) and
// /containerLogs/NS/POD/CONTAINER, which the API server calls for `kubectl
// logs` with its kubelet client certificate.
func (a *Agent) serveKubeletAPI() (*http.Server, error) {
	caPEM, err := os.ReadFile(a.cfg.ClientCA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", a.cfg.ClientCA)
	}
	cert, err := tls.LoadX509KeyPair(a.cfg.ServingCert, a.cfg.ServingKey)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", a.containerLogs)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert}, ClientCAs: pool,
			ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12,
		},
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(a.hostIP, strconv.Itoa(a.cfg.KubeletPort)))
	if err != nil {
		return nil, err
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return srv, nil
}

// containerLogs answers `kubectl logs` (tailLines, previous, follow).
func (a *Agent) containerLogs(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		http.Error(w, "a client certificate of the cluster CA is required", http.StatusUnauthorized)
		return
	}
	ns, pod, container := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	files, err := filepath.Glob(filepath.Join(a.cfg.Dir, "logs", ns+"_"+pod+"_*", container, "*.log"))
	if err != nil || len(files) == 0 {
		http.Error(w, fmt.Sprintf("no logs of container %q in pod %s/%s on this node", container, ns, pod), http.StatusNotFound)
		return
	}
	// Newest pod UID directory's restarts, by restart number.
	sort.Slice(files, func(i, j int) bool { return logOrder(files[i]) < logOrder(files[j]) })
	file := files[len(files)-1]
	if q.Get("previous") == "true" {
		if len(files) < 2 {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod), http.StatusBadRequest)
			return
		}
		file = files[len(files)-2]
	}
	raw0, err := os.ReadFile(file)
	raw := raw0
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if n, err := strconv.Atoi(q.Get("tailLines")); err == nil && n >= 0 {
		raw = tailLines(raw, n)
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(raw)
	if q.Get("follow") != "true" {
		return
	}
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(int64(len(raw0)), io.SeekStart); err != nil {
		return
	}
	rd := bufio.NewReader(f)
	flusher, _ := w.(http.Flusher)
	for {
		chunk, _ := io.ReadAll(rd)
		if len(chunk) > 0 {
			_, _ = w.Write(chunk)
			if flusher != nil {
				flusher.Flush()
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func logOrder(path string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(path), ".log"))
	return n
}

func tailLines(raw []byte, n int) []byte {
	lines := bytes.SplitAfter(raw, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, nil)
}
