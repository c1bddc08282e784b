package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a started component as the state file records it. StartTime (from
// /proc) guards against signalling an unrelated process that reused the pid.
type Proc struct {
	Name      string `json:"name"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	Log       string `json:"log"`
	Health    string `json:"health"`
}

// Start runs a component in its own session (so it outlives `up` and a
// terminal's hang-up, and `down` can signal its whole process group), with
// stdout and stderr appended to its log file.
func Start(comp Component, logPath string) (Proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, err
	}
	defer logFile.Close()
	cmd := exec.Command(comp.Binary, comp.Args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("start %s: %w", comp.Name, err)
	}
	pid := cmd.Process.Pid
	start, err := startTime(pid)
	if err != nil {
		// It died at once; still record it so the caller reports its log.
		start = 0
	}
	// Not waited for: the process must outlive this one. While `up` runs, a
	// child that dies stays a zombie, which Alive counts as dead.
	_ = cmd.Process.Release()
	return Proc{Name: comp.Name, PID: pid, StartTime: start, Log: logPath, Health: comp.Health}, nil
}

// Alive reports whether the recorded process still runs (not a zombie, and
// not another process that got the same pid).
func (p Proc) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	state, start, err := procStat(p.PID)
	if err != nil {
		return false
	}
	return state != "Z" && start == p.StartTime
}

// Stop sends SIGTERM to the process group, waits up to grace for it to exit,
// then sends SIGKILL and waits again.
func (p Proc) Stop(grace time.Duration) error {
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGTERM, grace}, {syscall.SIGKILL, 5 * time.Second}} {
		if !p.Alive() {
			return nil
		}
		// The negative pid names the process group Setsid made.
		if err := syscall.Kill(-p.PID, step.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal %s (pid %d): %w", p.Name, p.PID, err)
		}
		deadline := time.Now().Add(step.wait)
		for p.Alive() && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if p.Alive() {
		return fmt.Errorf("%s (pid %d) still runs after SIGKILL", p.Name, p.PID)
	}
	return nil
}

func startTime(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

// procStat reads the state and start time of a process from /proc/PID/stat.
func procStat(pid int) (state string, start uint64, err error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, err
	}
	return parseStat(string(raw))
}

// parseStat takes the fields after the command name, which is in parentheses
// and may itself contain spaces or parentheses: field 3 is the state and
// field 22 the start time in clock ticks since boot.
func parseStat(stat string) (state string, start uint64, err error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return "", 0, fmt.Errorf("malformed stat %q", stat)
	}
	fields := strings.Fields(stat[end+1:])
	if len(fields) < 20 {
		return "", 0, fmt.Errorf("malformed stat %q", stat)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("malformed start time in stat: %w", err)
	}
	return fields[0], start, nil
}
