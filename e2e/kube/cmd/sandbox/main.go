// Command sandbox runs a local Kubernetes control plane built from the real
// components (see e2e/kube/README.md):
//
//	sandbox up      start etcd, kube-apiserver, kube-controller-manager and
//	                kube-scheduler in the background; print the kubeconfig path
//	sandbox status  print each component's state
//	sandbox down    stop every process and remove the state directory
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"strom/e2e/kube/internal/sandbox"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: sandbox up|down|status [--dir DIR]")
	}
	binDir, err := ownDir()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	// The binaries live in <target>/kube/bin; the state goes beside them.
	dir := fs.String("dir", filepath.Join(filepath.Dir(binDir), "sandbox"), "state directory")
	bin := fs.String("bin", binDir, "directory of the component binaries")
	cidr := fs.String("service-cidr", sandbox.DefaultServiceCIDR, "service cluster IP range")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long each component may take to become healthy")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	layout := sandbox.Layout{Dir: abs}

	switch args[0] {
	case "up":
		// An interrupt cancels the wait; Up then stops what it started.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		opts := sandbox.Options{Dir: abs, BinDir: *bin, ServiceCIDR: *cidr, Timeout: *timeout}
		kubeconfig, err := sandbox.Up(ctx, opts, os.Stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "ready; kubectl and helm of the same release are in %s\n", *bin)
		fmt.Println(kubeconfig)
		return nil
	case "down":
		return sandbox.Down(layout, os.Stderr)
	case "status":
		return sandbox.Status(layout, os.Stdout)
	default:
		return fmt.Errorf("unknown command %q: want up, down or status", args[0])
	}
}

// ownDir is the directory of this executable: the build puts every sandbox
// binary there.
func ownDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		return "", err
	}
	return filepath.Dir(exe), nil
}
