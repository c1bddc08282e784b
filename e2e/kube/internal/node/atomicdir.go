package node

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// VolumeFile is one file of a generated volume (configMap, secret,
// downwardAPI, projected).
type VolumeFile struct {
	Data []byte
	Mode os.FileMode
}

// The layout the kubelet's atomic writer gives a generated volume, which
// programs watching a mounted Secret rely on: every version of the content
// is a complete directory "..<UTC timestamp>.<random>", the symlink "..data"
// names the current one, and each visible top-level entry is a symlink
// "name -> ..data/name". An update writes a new version beside the old one
// and renames a fresh "..data_tmp" symlink over "..data" (one atomic
// rename), so a reader sees either the whole old or the whole new content,
// never a mix; then the old version and the entries it alone had go.
const (
	dataLink        = "..data"
	dataLinkTmp     = "..data_tmp"
	versionTimeForm = "2006_01_02_15_04_05."
)

// AtomicDir writes the content of one generated volume in that layout.
type AtomicDir struct {
	Dir string
	// Prepare, if set, runs on a new version's directory before it becomes
	// visible (the pod's fsGroup ownership).
	Prepare func(version string) error
}

// Write makes files (relative paths) the volume's content unless that is
// its content already; it says whether it wrote a new version.
func (d AtomicDir) Write(files map[string]VolumeFile) (bool, error) {
	files, err := cleanPayload(files)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return false, err
	}
	old, err := os.Readlink(filepath.Join(d.Dir, dataLink))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if old != "" && sameContent(filepath.Join(d.Dir, old), files) {
		return false, nil
	}
	version, err := d.writeVersion(files)
	if err != nil {
		return false, err
	}
	tmp := filepath.Join(d.Dir, dataLinkTmp)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.Symlink(version, tmp); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, filepath.Join(d.Dir, dataLink)); err != nil {
		return false, err
	}
	top := map[string]bool{}
	for rel := range files {
		name, _, _ := strings.Cut(rel, "/")
		top[name] = true
	}
	if err := d.linkVisible(top); err != nil {
		return true, err
	}
	return true, d.removeStale(top, version)
}

// cleanPayload checks the paths of a volume's files: relative, inside the
// volume, and not starting with "..", which the layout keeps for itself
// (the API refuses such keys and paths too).
func cleanPayload(files map[string]VolumeFile) (map[string]VolumeFile, error) {
	out := make(map[string]VolumeFile, len(files))
	for rel, f := range files {
		clean := filepath.Clean(rel)
		// Clean leaves ".." only at the start.
		if rel == "" || filepath.IsAbs(rel) || clean == "." || strings.HasPrefix(clean, "..") {
			return nil, fmt.Errorf("invalid volume file path %q", rel)
		}
		out[clean] = f
	}
	return out, nil
}

// sameContent says whether the version directory holds exactly files (the
// same paths and bytes; modes come from the pod spec, which cannot change).
func sameContent(version string, files map[string]VolumeFile) bool {
	seen := 0
	err := filepath.WalkDir(version, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(version, path)
		if err != nil {
			return err
		}
		want, ok := files[rel]
		if !ok {
			return errDiffers
		}
		have, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(have, want.Data) {
			return errDiffers
		}
		seen++
		return nil
	})
	return err == nil && seen == len(files)
}

var errDiffers = errors.New("content differs")

// writeVersion writes files into a new version directory and returns its
// name (relative to the volume).
func (d AtomicDir) writeVersion(files map[string]VolumeFile) (string, error) {
	dir, err := os.MkdirTemp(d.Dir, ".."+time.Now().UTC().Format(versionTimeForm))
	if err != nil {
		return "", err
	}
	err = func() error {
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
		for rel, f := range files {
			p := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
				return err
			}
			// WriteFile's mode passed through the umask.
			if err := os.Chmod(p, f.Mode); err != nil {
				return err
			}
		}
		if d.Prepare != nil {
			return d.Prepare(dir)
		}
		return nil
	}()
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return filepath.Base(dir), nil
}

// linkVisible makes each top-level entry a symlink into "..data".
func (d AtomicDir) linkVisible(top map[string]bool) error {
	for name := range top {
		p := filepath.Join(d.Dir, name)
		want := filepath.Join(dataLink, name)
		if have, err := os.Readlink(p); err == nil && have == want {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if err := os.Symlink(want, p); err != nil {
			return err
		}
	}
	return nil
}

// removeStale removes the visible entries the new content does not have and
// every version but the current one (an interrupted earlier write may have
// left one too).
func (d AtomicDir) removeStale(top map[string]bool, current string) error {
	entries, err := os.ReadDir(d.Dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == dataLink || name == dataLinkTmp || name == current || top[name]:
			continue
		case strings.HasPrefix(name, ".."):
			errs = append(errs, os.RemoveAll(filepath.Join(d.Dir, name)))
		default:
			// Only entries of this layout: links into "..data".
			if target, err := os.Readlink(filepath.Join(d.Dir, name)); err == nil && strings.HasPrefix(target, dataLink+"/") {
				errs = append(errs, os.Remove(filepath.Join(d.Dir, name)))
			}
		}
	}
	return errors.Join(errs...)
}
