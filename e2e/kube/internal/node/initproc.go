package node

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ProcSpec is what `node-agent init SPEC` turns into a container process.
// The agent starts init in a new mount and UTS namespace (clone flags); init
// joins the pod's network namespace, puts the volumes in place, drops to the
// container's user and execs the real command. A file keeps it inspectable.
type ProcSpec struct {
	Netns    string   `json:"netns"` // /run/netns/NAME of the pod
	Hostname string   `json:"hostname"`
	Mounts   []Mount  `json:"mounts"`
	Dir      string   `json:"dir"`
	UID      *int64   `json:"uid,omitempty"`
	GID      *int64   `json:"gid,omitempty"`
	Groups   []int64  `json:"groups,omitempty"`
	Argv     []string `json:"argv"`
	Env      []string `json:"env"`
}

// Mount is one bind mount inside the container's mount namespace.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly"`
}

// WriteSpec stores a spec for init.
func WriteSpec(path string, s ProcSpec) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o600)
}

// RunInit is `node-agent init SPEC`. It must run on the thread main() locked
// (setns changes only the calling thread, and exec keeps that thread's
// namespaces). It returns only on failure.
func RunInit(specPath string) error {
	raw, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var s ProcSpec
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("%s: %w", specPath, err)
	}
	fd, err := unix.Open(s.Netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", s.Netns, err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("join netns %s: %w", s.Netns, err)
	}
	unix.Close(fd)
	// Nothing done here may leak to the host's mounts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// Our copy of /run/netns would keep every pod's netns alive (and with it
	// its veth) as long as this container runs; drop it.
	_ = unix.Unmount("/run/netns", unix.MNT_DETACH)
	if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	for _, m := range s.Mounts {
		if err := bindMount(m); err != nil {
			return err
		}
	}
	if s.Dir != "" {
		if err := os.Chdir(s.Dir); err != nil {
			return fmt.Errorf("workingDir: %w", err)
		}
	}
	if err := dropPrivileges(s); err != nil {
		return err
	}
	// A uid change clears the parent-death signal; set it (again) so the
	// container dies with the agent even if the agent is killed outright.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("pdeathsig: %w", err)
	}
	if os.Getppid() == 1 {
		return fmt.Errorf("the node agent is gone")
	}
	return syscall.Exec(s.Argv[0], s.Argv, s.Env)
}

func bindMount(m Mount) error {
	if err := ensureTarget(m.Source, m.Target); err != nil {
		return err
	}
	if err := unix.Mount(m.Source, m.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.Source, m.Target, err)
	}
	if m.ReadOnly {
		if err := unix.Mount("", m.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("read-only %s: %w", m.Target, err)
		}
	}
	return nil
}

// ensureTarget makes the mount point (a directory, or an empty file for a
// file source). The agent made the ones that were missing before it started
// the container (Targets) and removes them when it stops, since they are
// on the host's filesystem; this covers a race with another pod.
func ensureTarget(source, target string) error {
	st, err := os.Stat(source)
	if err != nil {
		return fmt.Errorf("volume source %s: %w", source, err)
	}
	if _, err := os.Lstat(target); err == nil {
		return nil
	}
	return makeMountPoint(target, st.IsDir())
}

func dropPrivileges(s ProcSpec) error {
	if s.UID == nil && s.GID == nil && len(s.Groups) == 0 {
		return nil
	}
	gid := 0
	if s.GID != nil {
		gid = int(*s.GID)
	}
	groups := []int{gid}
	for _, g := range s.Groups {
		groups = append(groups, int(g))
	}
	// Go applies these to every thread of the process (since Go 1.16).
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if s.UID != nil {
		if err := syscall.Setuid(int(*s.UID)); err != nil {
			return fmt.Errorf("setuid %d: %w", *s.UID, err)
		}
	}
	return nil
}
