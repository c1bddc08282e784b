package node

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func writeAtomic(t *testing.T, d AtomicDir, files map[string]VolumeFile) bool {
	t.Helper()
	wrote, err := d.Write(files)
	if err != nil {
		t.Fatal(err)
	}
	return wrote
}

// versions lists the version directories ("..<timestamp>.<random>").
func versions(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "..") && n != dataLink {
			out = append(out, n)
		}
	}
	return out
}

func readString(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestAtomicDirLayoutAndModes(t *testing.T) {
	d := AtomicDir{Dir: filepath.Join(t.TempDir(), "vol")}
	files := map[string]VolumeFile{
		"tls.key":    {Data: []byte("key-1"), Mode: 0o400},
		"conf/a.txt": {Data: []byte("a-1"), Mode: 0o644},
	}
	if !writeAtomic(t, d, files) {
		t.Fatal("first write reported no change")
	}
	vs := versions(t, d.Dir)
	if len(vs) != 1 || !strings.HasPrefix(vs[0], "..20") {
		t.Fatalf("version directories %v", vs)
	}
	if target, err := os.Readlink(filepath.Join(d.Dir, dataLink)); err != nil || target != vs[0] {
		t.Fatalf("..data -> %q (%v), want %s", target, err, vs[0])
	}
	for name, want := range map[string]string{"tls.key": "..data/tls.key", "conf": "..data/conf"} {
		if target, err := os.Readlink(filepath.Join(d.Dir, name)); err != nil || target != want {
			t.Errorf("%s -> %q (%v), want %s", name, target, err, want)
		}
	}
	for rel, want := range map[string]os.FileMode{"tls.key": 0o400, "conf/a.txt": 0o644, "conf": os.ModeDir | 0o755, "": os.ModeDir | 0o755} {
		st, err := os.Stat(filepath.Join(d.Dir, dataLink, rel))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%q: mode %s, want %s", rel, st.Mode(), want)
		}
	}
	if got := readString(t, filepath.Join(d.Dir, "conf", "a.txt")); got != "a-1" {
		t.Errorf("conf/a.txt = %q", got)
	}
	// The same content again: nothing written, the version stays.
	if writeAtomic(t, d, files) {
		t.Error("unchanged content reported as written")
	}
	if again := versions(t, d.Dir); len(again) != 1 || again[0] != vs[0] {
		t.Errorf("versions after an unchanged write: %v, before %v", again, vs)
	}
	for _, bad := range []string{"../escape", "/abs", "..hidden", "."} {
		if _, err := d.Write(map[string]VolumeFile{bad: {Data: []byte("x"), Mode: 0o644}}); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
}

func TestAtomicDirUpdateReplacesAndRemovesKeys(t *testing.T) {
	d := AtomicDir{Dir: filepath.Join(t.TempDir(), "vol")}
	writeAtomic(t, d, map[string]VolumeFile{
		"tls.crt": {Data: []byte("crt-1"), Mode: 0o644},
		"old.pem": {Data: []byte("old"), Mode: 0o644},
		"sub/x":   {Data: []byte("x"), Mode: 0o644},
	})
	first := versions(t, d.Dir)
	if !writeAtomic(t, d, map[string]VolumeFile{
		"tls.crt": {Data: []byte("crt-2"), Mode: 0o644},
		"new.pem": {Data: []byte("new"), Mode: 0o600},
	}) {
		t.Fatal("changed content reported as unchanged")
	}
	if got := readString(t, filepath.Join(d.Dir, "tls.crt")); got != "crt-2" {
		t.Errorf("tls.crt = %q after the update", got)
	}
	if got := readString(t, filepath.Join(d.Dir, "new.pem")); got != "new" {
		t.Errorf("new.pem = %q", got)
	}
	for _, gone := range []string{"old.pem", "sub", dataLinkTmp, first[0]} {
		if _, err := os.Lstat(filepath.Join(d.Dir, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there after the update (%v)", gone, err)
		}
	}
	if vs := versions(t, d.Dir); len(vs) != 1 || vs[0] == first[0] {
		t.Errorf("versions %v after the update (first %v)", vs, first)
	}
	// An empty content (an optional Secret that is gone) empties the volume.
	writeAtomic(t, d, map[string]VolumeFile{})
	entries, _ := os.ReadDir(d.Dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") {
			t.Errorf("%s left in an emptied volume", e.Name())
		}
	}
}

// TestAtomicDirReaderOfOldVersion: what a reader opened before an update
// stays the complete old version (a broker reading a certificate and its
// key while the Secret is renewed never gets one of each).
func TestAtomicDirReaderOfOldVersion(t *testing.T) {
	d := AtomicDir{Dir: filepath.Join(t.TempDir(), "vol")}
	v1 := map[string]VolumeFile{"tls.crt": {Data: []byte("crt-1"), Mode: 0o644}, "tls.key": {Data: []byte("key-1"), Mode: 0o600}}
	writeAtomic(t, d, v1)
	// The reader resolves "..data" once and opens both files of that version.
	root, err := os.OpenRoot(filepath.Join(d.Dir, dataLink))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	held := map[string]*os.File{}
	for name := range v1 {
		f, err := root.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		held[name] = f
	}
	writeAtomic(t, d, map[string]VolumeFile{"tls.crt": {Data: []byte("crt-2"), Mode: 0o644}, "tls.key": {Data: []byte("key-2"), Mode: 0o600}})
	for name, f := range held {
		raw, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != string(v1[name].Data) {
			t.Errorf("held %s reads %q after the update, want the old %q", name, raw, v1[name].Data)
		}
	}
	if got := readString(t, filepath.Join(d.Dir, "tls.key")); got != "key-2" {
		t.Errorf("a new reader sees tls.key = %q", got)
	}
}

// TestAtomicDirConcurrentReadersSeeWholeVersions: while versions follow
// each other, a reader that resolves "..data" once reads files of one
// version only, and a reader of the visible paths only ever whole files.
func TestAtomicDirConcurrentReadersSeeWholeVersions(t *testing.T) {
	d := AtomicDir{Dir: filepath.Join(t.TempDir(), "vol")}
	names := []string{"ca.crt", "tls.crt", "tls.key"}
	content := func(v int) map[string]VolumeFile {
		files := map[string]VolumeFile{}
		for _, n := range names {
			// Large enough that a file written in place is seen half done.
			files[n] = VolumeFile{Data: []byte(strings.Repeat(fmt.Sprintf("%s-%06d;", n, v), 2000)), Mode: 0o644}
		}
		return files
	}
	writeAtomic(t, d, content(0))
	const updates = 300
	var done atomic.Bool
	var whole, mixed, partial atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // resolves ..data once, reads every file of it
		defer wg.Done()
		for !done.Load() {
			root, err := os.OpenRoot(filepath.Join(d.Dir, dataLink))
			if err != nil {
				continue
			}
			var got []string
			for _, n := range names {
				raw, err := root.ReadFile(n)
				if err != nil {
					break // the version was removed under the reader: never a mix
				}
				got = append(got, strings.TrimPrefix(string(raw[:max(0, strings.IndexByte(string(raw), ';'))]), n+"-"))
			}
			root.Close()
			if len(got) == len(names) {
				whole.Add(1)
				if got[0] != got[1] || got[1] != got[2] {
					mixed.Add(1)
				}
			}
		}
	}()
	go func() { // visible paths: each read is one whole file of some version
		defer wg.Done()
		for !done.Load() {
			for _, n := range names {
				raw, err := os.ReadFile(filepath.Join(d.Dir, n))
				if err != nil {
					continue
				}
				v := string(raw[:max(0, strings.IndexByte(string(raw), ';'))])
				if string(raw) != strings.Repeat(v+";", 2000) {
					partial.Add(1)
				}
			}
		}
	}()
	for v := 1; v <= updates; v++ {
		if _, err := d.Write(content(v)); err != nil {
			done.Store(true)
			wg.Wait()
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	if whole.Load() == 0 {
		t.Fatal("the reader never read a whole version")
	}
	t.Logf("%d updates, %d whole versions read", updates, whole.Load())
	if mixed.Load() > 0 || partial.Load() > 0 {
		t.Errorf("%d of %d reads mixed versions, %d visible reads saw a partial file", mixed.Load(), whole.Load(), partial.Load())
	}
	if vs := versions(t, d.Dir); len(vs) != 1 {
		t.Errorf("versions left: %v", vs)
	}
}

// TestAtomicDirPrepareRunsBeforeTheSwap: the fsGroup hook sees the new
// version while "..data" still names the old one.
func TestAtomicDirPrepareRunsBeforeTheSwap(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	var seen []string
	d := AtomicDir{Dir: dir, Prepare: func(version string) error {
		cur, _ := os.Readlink(filepath.Join(dir, dataLink))
		if cur == filepath.Base(version) {
			return errors.New("the version is visible before Prepare ran")
		}
		seen = append(seen, filepath.Base(version))
		return nil
	}}
	writeAtomic(t, d, map[string]VolumeFile{"a": {Data: []byte("1"), Mode: 0o644}})
	writeAtomic(t, d, map[string]VolumeFile{"a": {Data: []byte("2"), Mode: 0o644}})
	if vs := versions(t, dir); len(seen) != 2 || len(vs) != 1 || vs[0] != seen[1] {
		t.Errorf("Prepare saw %v, versions %v", seen, vs)
	}
	failing := AtomicDir{Dir: dir, Prepare: func(string) error { return errors.New("chown failed") }}
	if _, err := failing.Write(map[string]VolumeFile{"a": {Data: []byte("3"), Mode: 0o644}}); err == nil {
		t.Fatal("a failing Prepare was not reported")
	}
	if got := readString(t, filepath.Join(dir, "a")); got != "2" {
		t.Errorf("after a failed update a = %q, want the last good content", got)
	}
	if vs := versions(t, dir); len(vs) != 1 {
		t.Errorf("a failed update left versions %v", vs)
	}
}
