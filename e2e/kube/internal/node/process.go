package node

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Proc is one running container process: `node-agent init SPEC` started in
// new mount and UTS namespaces, its own process group (so a stop reaches
// whatever the container forked), dying with the agent (Pdeathsig).
type Proc struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when it exited
	code   int           // exit code, 128+signal if killed; valid after done
	podman string        // the container's name when cmd is `podman run` (podman.go)
}

// StartProc runs init with spec, stdout and stderr appended to logPath.
func StartProc(self, specPath, logPath string) (*Proc, error) {
	cmd := exec.Command(self, "init", specPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	return startCmd(cmd, logPath)
}

// startCmd starts cmd in its own process group, dying with the agent, with
// stdout and stderr appended to logPath, and records its exit.
func startCmd(cmd *exec.Cmd, logPath string) (*Proc, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.code = exitCode(cmd.ProcessState)
		close(p.done)
	}()
	return p, nil
}

func exitCode(st *os.ProcessState) int {
	if st == nil {
		return -1
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Code is the exit code (after Done).
func (p *Proc) Code() int { return p.code }

// Stop sends SIGTERM to the container's process group, SIGKILL after grace,
// and waits until it is gone.
func (p *Proc) Stop(grace time.Duration) {
	if p.podman != "" {
		p.stopPodman(grace)
		return
	}
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	// The group may outlive its leader; SIGKILL reaches any rest.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}
