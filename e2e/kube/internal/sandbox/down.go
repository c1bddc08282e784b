package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// stopGrace is how long a component gets between SIGTERM and SIGKILL; the
// API server drains its requests in that time.
const stopGrace = 15 * time.Second

// Down stops every recorded process (last started first) and removes the
// state directory. If a process cannot be stopped it keeps the state, so a
// second `down` can try again, and says which.
func Down(l Layout, progress io.Writer) error {
	st, err := LoadState(l)
	if err != nil && !errors.Is(err, ErrNoState) {
		return err
	}
	var errs []error
	for i := len(st.Procs) - 1; i >= 0; i-- {
		p := st.Procs[i]
		if err := p.Stop(stopGrace); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(progress, "stopped %s (pid %d)\n", p.Name, p.PID)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := CleanupNode(l, st); err != nil {
		return fmt.Errorf("node cleanup: %w", err)
	}
	removed, err := removeDir(l)
	if removed {
		fmt.Fprintf(progress, "removed %s\n", l.Dir)
	}
	return err
}

// removeDir deletes the state directory only if `up` made it (marker) or it
// is empty: --dir may have been mistyped. removed says whether it was there.
func removeDir(l Layout) (removed bool, err error) {
	entries, err := os.ReadDir(l.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(l.Marker()); err != nil && len(entries) > 0 {
		return false, fmt.Errorf("%s is not a sandbox directory (no %s): not removing it", l.Dir, marker)
	}
	return true, os.RemoveAll(l.Dir)
}
