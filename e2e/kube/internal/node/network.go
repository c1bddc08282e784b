package node

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The pod network: one Linux bridge on the host holding the gateway address
// of the node's pod CIDR, and per pod a network namespace (`ip netns`) with
// one end of a veth pair as eth0 and the other on the bridge. Pods reach each
// other through the bridge and the host through the gateway. Done with the
// iproute2 commands so every step reads like the manual one.

func ip(args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// EnsureBridge makes the bridge with the gateway address, or adopts the one
// `sandbox up` made before the API server (which listens on that address).
// Packets arriving from pods may be forwarded (a Service's DNAT to another
// pod needs it) but only back onto the bridge: a table of our own drops
// anything pods send towards other interfaces, so nothing leaves the
// machine. The host-wide ip_forward stays as it is.
func EnsureBridge(n Names, cidr netip.Prefix) error {
	gw := netip.PrefixFrom(Gateway(cidr), cidr.Bits())
	steps := [][]string{
		{"addr", "replace", gw.String(), "dev", n.Bridge},
		{"link", "set", n.Bridge, "up"},
	}
	if !linkExists(n.Bridge) {
		steps = append([][]string{{"link", "add", n.Bridge, "type", "bridge"}}, steps...)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join("/proc/sys/net/ipv4/conf", n.Bridge, "forwarding"), []byte("1"), 0o644); err != nil {
		return fmt.Errorf("forwarding on %s: %w", n.Bridge, err)
	}
	rules := fmt.Sprintf(`table inet %[1]s {
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "%[2]s" oifname != "%[2]s" drop
	}
}
`, n.Table(), n.Bridge)
	return nft(rules)
}

func nft(script string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// NetnsPath is where `ip netns` keeps a namespace.
func NetnsPath(name string) string { return filepath.Join("/run/netns", name) }

// SetupPodNetwork makes the pod's namespace, its veth pair on the bridge and
// its address and default route.
func SetupPodNetwork(n Names, cidr netip.Prefix, podUID string, addr netip.Addr) (err error) {
	ns, veth := n.Netns(podUID), n.HostVeth(podUID)
	defer func() {
		if err != nil {
			_ = TeardownPodNetwork(n, podUID)
		}
	}()
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"link", "set", veth, "master", n.Bridge, "up"},
		// A pod reaching itself through a Service comes back on its port.
		{"link", "set", veth, "type", "bridge_slave", "hairpin", "on"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", netip.PrefixFrom(addr, cidr.Bits()).String(), "dev", "eth0"},
		// Announce the address when eth0 comes up (gratuitous ARP), so the host and
		// other pods that knew it under an earlier pod's MAC learn the new one at
		// once rather than after their neighbour entries go stale.
		{"netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_notify=1"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "route", "add", "default", "via", Gateway(cidr).String()},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// TeardownPodNetwork removes the veth and the namespace; either may be gone.
func TeardownPodNetwork(n Names, podUID string) error {
	var errs []error
	if linkExists(n.HostVeth(podUID)) {
		if err := ip("link", "del", n.HostVeth(podUID)); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(NetnsPath(n.Netns(podUID))); err == nil {
		if err := ip("netns", "del", n.Netns(podUID)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CleanupPods removes every pod namespace with the agent's prefix and its
// veth: what a killed agent left behind.
func CleanupPods(n Names) error {
	var errs []error
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), n.Prefix) {
			uid := strings.TrimPrefix(e.Name(), n.Prefix)
			if err := TeardownPodNetwork(n, uid); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// CleanupNetwork removes the pods' namespaces, the bridge and the
// forwarding guard.
func CleanupNetwork(n Names) error {
	errs := []error{CleanupPods(n)}
	if linkExists(n.Bridge) {
		errs = append(errs, ip("link", "del", n.Bridge))
	}
	if exec.Command("nft", "list", "table", "inet", n.Table()).Run() == nil {
		errs = append(errs, nft("delete table inet "+n.Table()+"\n"))
	}
	return errors.Join(errs...)
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}
