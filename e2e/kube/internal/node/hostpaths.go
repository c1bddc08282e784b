package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// HostPaths records the mount points the agent had to create on the host's
// filesystem (containers share it: there are no image root filesystems), so
// they are removed again when the agent stops. They are kept while it runs:
// removing one while another pod's namespace mounts on it would detach that
// pod's volume.
type HostPaths struct {
	Record  string // file listing them too, for a cleanup after a killed agent
	mu      sync.Mutex
	created []string
}

// MountPointRecord is the file where an agent with state dir lists them.
func MountPointRecord(dir string) string { return filepath.Join(dir, "mount-points") }

// RemoveRecordedMountPoints removes (only while empty) the mount points an
// agent recorded: what `sandbox down` does after a killed agent.
func RemoveRecordedMountPoints(dir string) error {
	raw, err := os.ReadFile(MountPointRecord(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	h := &HostPaths{created: strings.Fields(string(raw))}
	return h.RemoveAll()
}

// Ensure makes target (a directory, or an empty file when source is a file)
// and its missing parents, remembering the top-most one it made.
func (h *HostPaths) Ensure(source, target string) error {
	st, err := os.Stat(source)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(target); err == nil {
		return nil
	}
	top := target
	for p := filepath.Dir(target); p != "/"; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		top = p
	}
	h.mu.Lock()
	h.created = append(h.created, top)
	if h.Record != "" {
		if f, err := os.OpenFile(h.Record, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			_, _ = f.WriteString(top + "\n")
			f.Close()
		}
	}
	h.mu.Unlock()
	return makeMountPoint(target, st.IsDir())
}

// makeMountPoint creates an empty directory or file at target for a bind
// mount of a directory or a file, with the directories above it.
func makeMountPoint(target string, dir bool) error {
	if dir {
		return os.MkdirAll(target, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// RemoveAll deletes what Ensure made, newest first, but only while it is
// still empty: a container may have written through a mount point that was
// not covered by a volume, and that is not the agent's to delete.
func (h *HostPaths) RemoveAll() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for i := len(h.created) - 1; i >= 0; i-- {
		if err := removeEmptyTree(h.created[i]); err != nil {
			errs = append(errs, err)
		}
	}
	h.created = nil
	return errors.Join(errs...)
}

func removeEmptyTree(p string) error {
	st, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		if st.Size() == 0 {
			return os.Remove(p)
		}
		return nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := removeEmptyTree(filepath.Join(p, e.Name())); err != nil {
			return err
		}
	}
	if rest, _ := os.ReadDir(p); len(rest) == 0 {
		return os.Remove(p)
	}
	return nil
}
