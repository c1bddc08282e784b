package node

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
)

// Names are the host-wide names of one agent's kernel objects. They are
// derived from the agent's state directory (bridge, pod CIDR) and the pod UID
// (netns, veth), so two sandboxes on one machine never share a name and a
// restarted agent finds what it made before.
type Names struct {
	Bridge string // the pod bridge, also the host side of every pod's route
	Prefix string // every pod netns starts with it
	hash   string
}

// Table is the agent's nftables table (inet family): the forwarding guard.
func (n Names) Table() string { return "strom_" + n.hash }

func shortHash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// NamesFor gives the names of the agent that keeps its state in dir.
func NamesFor(dir string) Names {
	h := shortHash(dir, 8)
	return Names{Bridge: "skb" + h, Prefix: "strom-" + h + "-", hash: h}
}

// Netns is the `ip netns` name of a pod's network namespace.
func (n Names) Netns(podUID string) string { return n.Prefix + podUID }

// HostVeth is the host end of a pod's veth pair: "skv" + 11 hex digits, under
// the kernel's 15-character limit for interface names.
func (n Names) HostVeth(podUID string) string { return "skv" + shortHash(n.Prefix+podUID, 11) }

// DefaultPodCIDR is a /24 out of 10.244.0.0/16 (the range kubeadm and kind
// use for pods) chosen by the state directory, so concurrent sandboxes on one
// machine get different subnets on their different bridges.
func DefaultPodCIDR(dir string) netip.Prefix {
	sum := sha256.Sum256([]byte(dir))
	third := 1 + int(sum[0])%250
	return netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", third))
}

// Gateway is the bridge's address: the first host address of the pod CIDR.
func Gateway(cidr netip.Prefix) netip.Addr { return cidr.Masked().Addr().Next() }
