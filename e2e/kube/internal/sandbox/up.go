package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"
)

// Options are the knobs of `up`.
type Options struct {
	Dir         string        // state directory (certs, kubeconfigs, logs, etcd data)
	BinDir      string        // where scripts/kube-build.sh put the binaries
	ServiceCIDR string        // --service-cluster-ip-range
	Timeout     time.Duration // per component, until it is healthy
}

// Up starts the control plane and returns the admin kubeconfig path once
// every component is healthy. On any failure (or ctx cancelled by an
// interrupt) it stops whatever it started and removes the state directory.
func Up(ctx context.Context, opts Options, progress io.Writer) (kubeconfig string, err error) {
	l := Layout{Dir: opts.Dir}
	if _, err := os.Stat(l.Dir); err == nil {
		return "", fmt.Errorf("%s exists: run `down` first, or use another --dir", l.Dir)
	}
	cidr, err := netip.ParsePrefix(opts.ServiceCIDR)
	if err != nil {
		return "", fmt.Errorf("service CIDR: %w", err)
	}
	ports, err := FreePorts()
	if err != nil {
		return "", err
	}
	c := Cluster{Layout: l, BinDir: opts.BinDir, Ports: ports, ServiceCIDR: cidr}
	comps := c.Components()
	for _, comp := range comps {
		if _, err := os.Stat(comp.Binary); err != nil {
			return "", fmt.Errorf("%s: %w (build with scripts/kube-build.sh)", comp.Name, err)
		}
	}

	if err := os.MkdirAll(l.Logs(), 0o755); err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(progress, "up failed, cleaning up %s\n", l.Dir)
			if derr := Down(l, progress); derr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup: %w", derr))
			}
		}
	}()
	if err := os.WriteFile(l.Marker(), nil, 0o644); err != nil {
		return "", err
	}
	if err := WriteCredentials(c); err != nil {
		return "", err
	}
	st := State{Ports: ports, Kubeconfig: l.Kubeconfig(Admin.Name)}
	if err := st.Save(l); err != nil {
		return "", err
	}
	client, err := HealthClient(l)
	if err != nil {
		return "", err
	}
	if err := PrepareNodeNetwork(c); err != nil {
		return "", err
	}
	for _, comp := range comps {
		p, err := Start(comp, l.Log(comp.Name))
		if err != nil {
			return "", err
		}
		// Recorded before waiting, so an interrupt or failure still stops it.
		st.Procs = append(st.Procs, p)
		if err := st.Save(l); err != nil {
			return "", err
		}
		fmt.Fprintf(progress, "started %s (pid %d), waiting for %s\n", p.Name, p.PID, p.Health)
		began := time.Now()
		wctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		err = WaitHealthy(wctx, client, p)
		cancel()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(progress, "%s healthy after %s\n", p.Name, time.Since(began).Round(100*time.Millisecond))
	}
	if err := EnsureDefaultStorageClass(ctx, st.Kubeconfig); err != nil {
		return "", err
	}
	began := time.Now()
	if err := DeployClusterDNS(ctx, c, st.Kubeconfig, opts.Timeout); err != nil {
		return "", err
	}
	fmt.Fprintf(progress, "cluster DNS (CoreDNS) available after %s\n", time.Since(began).Round(100*time.Millisecond))
	return st.Kubeconfig, nil
}
