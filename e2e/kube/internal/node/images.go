package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Image is one entry of the image table (e2e/kube/images.json): what a
// container image means on this machine.
type Image struct {
	Repository string   `json:"repository"`
	Entrypoint []string `json:"entrypoint"` // the image's ENTRYPOINT
	Cmd        []string `json:"cmd"`        // the image's CMD
	Path       []string `json:"path"`       // directories searched for the command
	// Runtime "podman": containers run from the image itself (the pod's image
	// reference as written) with podman (podman.go); Entrypoint, Cmd and
	// Path are then unused. Empty: as processes.
	Runtime string `json:"runtime,omitempty"`
}

// Images is the loaded table.
type Images struct {
	entries map[string]Image
}

// ErrUnknownImage is what a missing image is reported as (ErrImagePull).
type ErrUnknownImage struct{ Image string }

func (e ErrUnknownImage) Error() string {
	return fmt.Sprintf("image %q is not in the node agent's image table; add it to e2e/kube/images.json", e.Image)
}

// LoadImages reads the table, expanding ${REPO} and ${TARGET} in paths.
func LoadImages(file, repo, target string) (*Images, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Images []Image `json:"images"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	t := &Images{entries: map[string]Image{}}
	r := strings.NewReplacer("${REPO}", repo, "${TARGET}", target)
	for _, img := range doc.Images {
		if img.Runtime != "" && img.Runtime != RuntimePodman {
			return nil, fmt.Errorf("%s: image %s: unknown runtime %q (only %q)", file, img.Repository, img.Runtime, RuntimePodman)
		}
		for i, p := range img.Path {
			img.Path[i] = r.Replace(p)
		}
		t.entries[Repository(img.Repository)] = img
	}
	return t, nil
}

// Repository reduces an image reference to its repository the way a
// registry client names it: no tag, no digest, Docker Hub's implicit
// "docker.io/" and "library/" dropped.
func Repository(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	// A tag follows the last colon after the last slash (a colon before it
	// is a registry port).
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	ref = strings.TrimPrefix(ref, "docker.io/")
	ref = strings.TrimPrefix(ref, "index.docker.io/")
	return strings.TrimPrefix(ref, "library/")
}

// Lookup finds the image.
func (t *Images) Lookup(ref string) (Image, error) {
	img, ok := t.entries[Repository(ref)]
	if !ok {
		return Image{}, ErrUnknownImage{Image: ref}
	}
	return img, nil
}

// Argv is the process a container runs, by Kubernetes' rule over the
// image's ENTRYPOINT and CMD: command replaces both, args replace CMD. Its
// first word becomes an absolute path: an absolute path that exists on this
// machine is kept; otherwise the base name (and the base name without
// ".sh", for Kafka's scripts) is searched in the image's path.
func (img Image) Argv(command, args []string) ([]string, error) {
	var argv []string
	switch {
	case len(command) > 0:
		argv = append(append(argv, command...), args...)
	case len(args) > 0:
		argv = append(append(argv, img.Entrypoint...), args...)
	default:
		argv = append(append(argv, img.Entrypoint...), img.Cmd...)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("image %s has no entrypoint or cmd and the container no command", img.Repository)
	}
	exe, err := img.resolve(argv[0])
	if err != nil {
		return nil, err
	}
	argv[0] = exe
	return argv, nil
}

func (img Image) resolve(name string) (string, error) {
	if filepath.IsAbs(name) && isExecutable(name) {
		return name, nil
	}
	base := filepath.Base(name)
	for _, cand := range []string{base, strings.TrimSuffix(base, ".sh")} {
		for _, dir := range img.Path {
			p := filepath.Join(dir, cand)
			if isExecutable(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("executable %q not found in image %s (searched %s)", name, img.Repository, strings.Join(img.Path, ", "))
}

// PathEnv is the PATH a container of this image gets: the image's
// directories first, then the usual ones.
func (img Image) PathEnv() string {
	return strings.Join(append(append([]string{}, img.Path...), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"), ":")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
