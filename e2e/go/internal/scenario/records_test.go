package scenario

import (
	"errors"
	"strings"
	"testing"
)

func rec(p int32, o int64, v string) Record { return Record{Partition: p, Offset: o, Value: []byte(v)} }

func TestCompareCatchesEveryKindOfMismatch(t *testing.T) {
	want := byPosition([]Record{rec(0, 0, "a"), rec(0, 1, "b"), rec(1, 0, "c")})
	if err := compare("exact", []Record{rec(1, 0, "c"), rec(0, 0, "a"), rec(0, 1, "b")}, want); err != nil {
		t.Fatalf("an exact match failed: %v", err)
	}
	cases := map[string][]Record{
		"missing":                {rec(0, 0, "a"), rec(0, 1, "b")},
		"more than once":         {rec(0, 0, "a"), rec(0, 1, "b"), rec(1, 0, "c"), rec(0, 1, "b")},
		"unexpected":             {rec(0, 0, "a"), rec(0, 1, "b"), rec(1, 0, "c"), rec(2, 0, "d")},
		"with a different value": {rec(0, 0, "a"), rec(0, 1, "x"), rec(1, 0, "c")},
	}
	for problem, got := range cases {
		err := compare("case", got, want)
		var failed *CheckFailed
		if !errors.As(err, &failed) || !strings.Contains(err.Error(), problem) {
			t.Errorf("%s: got %v", problem, err)
		}
	}
}

func TestCheckOrderPerPartition(t *testing.T) {
	if err := checkOrder("ok", []Record{rec(0, 0, ""), rec(1, 5, ""), rec(0, 1, ""), rec(1, 6, "")}); err != nil {
		t.Fatal(err)
	}
	if err := checkOrder("back", []Record{rec(0, 1, ""), rec(0, 1, "")}); err == nil {
		t.Fatal("a repeated offset passed")
	}
}

type fakeMember struct{ *MemberState }

func (fakeMember) Commit() error { return nil }
func (fakeMember) Close() error  { return nil }

func members(assignments ...[]int32) []Member {
	out := make([]Member, len(assignments))
	for i, parts := range assignments {
		s := NewMemberState("m", false)
		s.Assigned(parts)
		out[i] = fakeMember{s}
	}
	return out
}

func TestSplitOK(t *testing.T) {
	if !splitOK(members([]int32{0, 1}, []int32{2, 3}, []int32{4, 5})) {
		t.Error("a disjoint cover failed")
	}
	for name, ms := range map[string][]Member{
		"shared":   members([]int32{0, 1, 2}, []int32{2, 3, 4, 5}),
		"gap":      members([]int32{0, 1}, []int32{2, 3, 4}),
		"empty":    members([]int32{0, 1, 2, 3, 4, 5}, nil),
		"too many": members([]int32{0, 1, 2}, []int32{3, 4, 5, 6}),
	} {
		if splitOK(ms) {
			t.Errorf("%s passed", name)
		}
	}
}

func TestRevokedLeavesTheRest(t *testing.T) {
	s := NewMemberState("m", true)
	if held := s.Assigned([]int32{3, 1}); !held {
		t.Error("a paused member was not held")
	}
	s.Revoked([]int32{3})
	if got := s.Assignment(); len(got) != 1 || got[0] != 1 || s.RebalanceCallbacks() != 2 {
		t.Errorf("assignment %v after %d callbacks", got, s.RebalanceCallbacks())
	}
	select {
	case <-s.ReleasedCh():
		t.Error("released before Release")
	default:
	}
	_ = s.Release()
	_ = s.Release() // idempotent
	<-s.ReleasedCh()
}
