package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// State is what `up` records as it goes, so `status` and `down` (or a failed
// `up` cleaning after itself) know every process that was started.
type State struct {
	Ports      Ports  `json:"ports"`
	Kubeconfig string `json:"kubeconfig"`
	Procs      []Proc `json:"procs"`
}

// ErrNoState means the directory holds no sandbox.
var ErrNoState = errors.New("no sandbox state")

// Save writes the state atomically (a reader never sees half a file).
func (s State) Save(l Layout) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := l.State() + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, l.State())
}

// LoadState reads the state file; ErrNoState if there is none.
func LoadState(l Layout) (State, error) {
	raw, err := os.ReadFile(l.State())
	if errors.Is(err, os.ErrNotExist) {
		return State{}, ErrNoState
	}
	if err != nil {
		return State{}, err
	}
	var s State
	if err := json.Unmarshal(raw, &s); err != nil {
		return State{}, fmt.Errorf("%s: %w", l.State(), err)
	}
	return s, nil
}
