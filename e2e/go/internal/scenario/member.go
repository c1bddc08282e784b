package scenario

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Member is one subscribed consumer of a group. It keeps consuming on its own;
// while not released it takes part in the group but hands out no records.
type Member interface {
	State() *MemberState
	// Release starts delivering records of the assigned partitions
	// (MemberState's Release does the bookkeeping; adapters that pause extend it).
	Release() error
	// Commit synchronously commits what the member has received.
	Commit() error
	// Close closes the consumer the way the library does (a dynamic member
	// leaves the group; a static member keeps its membership); idempotent.
	Close() error
}

// MemberOptions say how the adapter configures a member.
type MemberOptions struct {
	InstanceID string // group.instance.id; "" for a dynamic member
	// ResetNone: no committed offset is an error (auto.offset.reset=none) where
	// the library can say so; otherwise the earliest offset.
	ResetNone bool
	Paused    bool // join the group but deliver nothing until Release
}

// MemberState is what a member has seen, shared between its library's goroutines
// and the scenario. Adapters call Assigned/Revoked from rebalance callbacks, Got
// with received records and Error with errors.
type MemberState struct {
	Label string

	mu         sync.Mutex
	assignment map[int32]bool
	callbacks  int
	records    []Record
	errors     []string
	fenced     bool
	released   bool
	releasedCh chan struct{} // closed on release
}

// NewMemberState starts a member's bookkeeping; paused members are not released.
func NewMemberState(label string, paused bool) *MemberState {
	s := &MemberState{Label: label, assignment: map[int32]bool{}, releasedCh: make(chan struct{})}
	if !paused {
		s.markReleased()
	}
	return s
}

// State lets an adapter's member embed MemberState to satisfy Member.State.
func (s *MemberState) State() *MemberState { return s }

// Assigned adds partitions to the assignment (a full assignment for eager
// protocols, the added ones for cooperative). It reports whether the member is
// still held back, i.e. the adapter must keep those partitions paused.
func (s *MemberState) Assigned(partitions []int32) (held bool) {
	s.mu.Lock()
	for _, p := range partitions {
		s.assignment[p] = true
	}
	s.callbacks++
	held = !s.released
	s.mu.Unlock()
	logf("%s: assigned %v", s.Label, sorted(partitions))
	return held
}

// Revoked removes partitions from the assignment.
func (s *MemberState) Revoked(partitions []int32) {
	s.mu.Lock()
	for _, p := range partitions {
		delete(s.assignment, p)
	}
	s.callbacks++
	s.mu.Unlock()
	logf("%s: revoked %v", s.Label, sorted(partitions))
}

// Got records received records.
func (s *MemberState) Got(records ...Record) {
	if len(records) == 0 {
		return
	}
	s.mu.Lock()
	s.records = append(s.records, records...)
	s.mu.Unlock()
}

// Error records an error the library reported; fenced marks a fenced static member.
func (s *MemberState) Error(message string, fenced bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errors) == 0 || s.errors[len(s.errors)-1] != message {
		s.errors = append(s.errors, message)
		logf("%s: error: %s", s.Label, message)
	}
	s.fenced = s.fenced || fenced
}

// Release ends the hold: records may be delivered from now on.
func (s *MemberState) Release() error {
	s.markReleased()
	return nil
}

func (s *MemberState) markReleased() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.released {
		s.released = true
		close(s.releasedCh)
	}
}

// ReleasedCh is closed once the member is released; a held member waits on it.
func (s *MemberState) ReleasedCh() <-chan struct{} { return s.releasedCh }

// Assignment is the current assignment, sorted.
func (s *MemberState) Assignment() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.partitionsLocked()
}

func (s *MemberState) partitionsLocked() []int32 {
	out := make([]int32, 0, len(s.assignment))
	for p := range s.assignment {
		out = append(out, p)
	}
	return sorted(out)
}

// RebalanceCallbacks counts the assign and revoke callbacks so far.
func (s *MemberState) RebalanceCallbacks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.callbacks
}

// Records are the records received so far, in receive order.
func (s *MemberState) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

// Errors are the last few distinct errors.
func (s *MemberState) Errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errors[max(0, len(s.errors)-5):])
}

// Fenced tells whether the library told this member it was fenced.
func (s *MemberState) Fenced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fenced
}

func sorted(ps []int32) []int32 {
	out := slices.Clone(ps)
	slices.Sort(out)
	return out
}

// splitOK: every member has partitions, none shared, all six covered.
func splitOK(members []Member) bool {
	seen := map[int32]bool{}
	for _, m := range members {
		parts := m.State().Assignment()
		if len(parts) == 0 {
			return false
		}
		for _, p := range parts {
			if seen[p] {
				return false
			}
			seen[p] = true
		}
	}
	for p := int32(0); p < Partitions; p++ {
		if !seen[p] {
			return false
		}
	}
	return len(seen) == Partitions
}

func describe(members []Member) string {
	parts := make([]string, 0, len(members))
	for _, m := range members {
		s := m.State()
		text := fmt.Sprintf("%s=%v", s.Label, s.Assignment())
		if errs := s.Errors(); len(errs) > 0 {
			text += fmt.Sprintf(" errors=%q", errs)
		}
		parts = append(parts, text)
	}
	return strings.Join(parts, ", ")
}

// closeAll closes members; a failed close is logged, not returned (cleanup path).
func closeAll(members []Member) {
	for _, m := range members {
		if err := m.Close(); err != nil {
			logf("%s: close failed: %v", m.State().Label, err)
		}
	}
}
