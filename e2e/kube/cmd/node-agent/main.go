// Command node-agent is the sandbox's stand-in for the kubelet and a
// container runtime (see e2e/kube/README.md):
//
//	node-agent run --kubeconfig FILE --name NODE --dir DIR ...
//	        register the Node, keep its Lease, run the pods bound to it
//	node-agent init SPEC
//	        (internal) become one container process: join the pod's network
//	        namespace, mount its volumes, drop privileges, exec the command
//	node-agent cleanup --dir DIR
//	        remove the podman containers and the network a killed agent
//	        left behind
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"strom/e2e/kube/internal/node"
)

func init() {
	// `init` joins the pod's network namespace with setns, which changes
	// only the calling thread; exec keeps that thread's namespaces. Stay on
	// the main thread from the start.
	if len(os.Args) > 1 && os.Args[1] == "init" {
		runtime.LockOSThread()
	}
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "node-agent:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: node-agent run|init|cleanup ...")
	}
	switch args[0] {
	case "init":
		if len(args) != 2 {
			return fmt.Errorf("usage: node-agent init SPEC")
		}
		err := node.RunInit(args[1])
		// Exit code 128 says "the container could not be started" to the agent.
		fmt.Fprintln(os.Stderr, "node-agent init:", err)
		os.Exit(128)
	case "cleanup":
		fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
		dir := fs.String("dir", "", "the agent's state directory")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		abs, err := filepath.Abs(*dir)
		if err != nil {
			return err
		}
		return errors.Join(node.CleanupContainers(abs), node.CleanupNetwork(node.NamesFor(abs)))
	case "run":
		return runAgent(args[1:])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func runAgent(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "the node's kubeconfig (system:node:NAME)")
	name := fs.String("name", "", "node name")
	dir := fs.String("dir", "", "state directory (pods, logs)")
	podCIDR := fs.String("pod-cidr", "", "pod CIDR (default: a /24 of 10.244.0.0/16 chosen by --dir)")
	dns := fs.String("cluster-dns", "10.96.0.10", "cluster DNS Service IP for pods' resolv.conf")
	images := fs.String("images", "", "image table (e2e/kube/images.json)")
	repo := fs.String("repo", "", "repository root (${REPO} in the image table)")
	target := fs.String("target", "", "cargo target directory (${TARGET} in the image table)")
	port := fs.Int("kubelet-port", 0, "port of the kubelet API (/containerLogs); 0: off")
	cert := fs.String("tls-cert", "", "kubelet API serving certificate")
	key := fs.String("tls-key", "", "kubelet API serving key")
	clientCA := fs.String("client-ca", "", "CA of the API server's kubelet client certificate")
	volumeRefresh := fs.Duration("volume-refresh", node.DefaultVolumeRefresh,
		"how often running pods' configMap, secret, downwardAPI and projected volumes are read again and updated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kubeconfig == "" || *name == "" || *dir == "" || *images == "" {
		return fmt.Errorf("--kubeconfig, --name, --dir and --images are required")
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	cidr := node.DefaultPodCIDR(absDir)
	if *podCIDR != "" {
		if cidr, err = netip.ParsePrefix(*podCIDR); err != nil {
			return err
		}
	}
	table, err := node.LoadImages(*images, *repo, *target)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg := node.Config{
		NodeName: *name, Kubeconfig: *kubeconfig, Dir: absDir, PodCIDR: cidr, ClusterDNS: *dns,
		KubeletPort: *port, ServingCert: *cert, ServingKey: *key, ClientCA: *clientCA,
		Images: table, Self: self, VolumeRefresh: *volumeRefresh,
	}
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return node.Run(ctx, cfg)
}
