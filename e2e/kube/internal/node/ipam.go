package node

import (
	"fmt"
	"net/netip"
	"sync"
)

// IPAM hands out pod addresses from the node's pod CIDR, never the network
// address, the gateway (bridge) or the broadcast address. In memory only: the
// agent removes every pod network when it stops, so nothing survives it.
type IPAM struct {
	mu    sync.Mutex
	cidr  netip.Prefix
	inUse map[netip.Addr]string // address -> pod UID
}

func NewIPAM(cidr netip.Prefix) *IPAM {
	return &IPAM{cidr: cidr.Masked(), inUse: map[netip.Addr]string{}}
}

// Allocate gives owner the lowest free address (the same one again if it
// already has one).
func (p *IPAM) Allocate(owner string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, o := range p.inUse {
		if o == owner {
			return a, nil
		}
	}
	gw := Gateway(p.cidr)
	for a := gw.Next(); p.cidr.Contains(a); a = a.Next() {
		if !p.cidr.Contains(a.Next()) {
			break // broadcast
		}
		if _, used := p.inUse[a]; !used {
			p.inUse[a] = owner
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("pod CIDR %s is full", p.cidr)
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
