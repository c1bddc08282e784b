package node

import (
	"fmt"
	"net/netip"
	"sync"
)

// IPAM hands out pod addresses from the node's pod CIDR, never the network
// address, the gateway (bridge) or the broadcast address. In memory only: the
// agent removes every pod network when it stops, so nothing survives it.
//
// Like the host-local CNI plugin most clusters use, it goes round the range
// from the last address it gave out instead of taking the lowest free one: a
// replacement pod then gets a new address, as on a real node, and an address
// is not handed to a new pod while peers may still cache the old owner's MAC.
type IPAM struct {
	mu    sync.Mutex
	cidr  netip.Prefix
	inUse map[netip.Addr]string // address -> pod UID
	last  netip.Addr            // the address given out last
}

func NewIPAM(cidr netip.Prefix) *IPAM {
	cidr = cidr.Masked()
	return &IPAM{cidr: cidr, inUse: map[netip.Addr]string{}, last: Gateway(cidr)}
}

// Allocate gives owner the next free address after the last one given out
// (the same one again if owner already has one).
func (p *IPAM) Allocate(owner string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cidr.Bits() > 30 {
		return netip.Addr{}, fmt.Errorf("pod CIDR %s has no room for a pod beside the gateway", p.cidr)
	}
	for a, o := range p.inUse {
		if o == owner {
			return a, nil
		}
	}
	for a, n := p.next(p.last), 0; n < 1<<(32-p.cidr.Bits()); a, n = p.next(a), n+1 {
		if _, used := p.inUse[a]; !used {
			p.inUse[a] = owner
			p.last = a
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("pod CIDR %s is full", p.cidr)
}

// next is the pod address after a, wrapping from the last one before the
// broadcast address to the first one after the gateway.
func (p *IPAM) next(a netip.Addr) netip.Addr {
	n := a.Next()
	if !p.cidr.Contains(n) || !p.cidr.Contains(n.Next()) {
		return Gateway(p.cidr).Next()
	}
	return n
}

// Release frees owner's address, if it has one.
func (p *IPAM) Release(owner string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, o := range p.inUse {
		if o == owner {
			delete(p.inUse, a)
		}
	}
}
