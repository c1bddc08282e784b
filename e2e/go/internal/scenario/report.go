package scenario

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

var phaseCapabilities = map[string][]string{
	"one":      {"produce", "idempotence", "compression", "consume", "groups", "commit_resume", "static_membership"},
	"two":      {"commit_resume"},
	"security": {"sasl_scram", "mtls"},
}

var logMu sync.Mutex

// logf prints a timestamped progress line (member goroutines log too).
func logf(format string, args ...any) {
	logMu.Lock()
	defer logMu.Unlock()
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Logf is logf for the adapters.
func Logf(format string, args ...any) { logf(format, args...) }

// report holds the phase's results; printed once as the COMPAT line (also by the watchdog).
type report struct {
	client, version string
	capabilities    []string

	mu       sync.Mutex
	checks   map[string]string
	notes    map[string]string
	stepName string
	emitted  bool
}

func newReport(client, version, phase string) *report {
	return &report{
		client: client, version: version, capabilities: phaseCapabilities[phase],
		checks: map[string]string{}, notes: map[string]string{}, stepName: "start",
	}
}

func (r *report) passed(cap, note string) {
	r.mu.Lock()
	if r.checks[cap] != "fail" {
		r.checks[cap], r.notes[cap] = "pass", note
	}
	r.mu.Unlock()
	logf("PASS %s: %s", cap, note)
}

func (r *report) failed(cap, note string) {
	r.mu.Lock()
	if r.checks[cap] == "fail" {
		r.notes[cap] += "; " + note
	} else {
		r.checks[cap], r.notes[cap] = "fail", note
	}
	r.mu.Unlock()
	logf("FAIL %s: %s", cap, note)
}

func (r *report) notApplicable(cap, note string) {
	r.mu.Lock()
	r.checks[cap], r.notes[cap] = "n/a", note
	r.mu.Unlock()
	logf("N/A %s: %s", cap, note)
}

func (r *report) decided(cap string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.checks[cap]
	return ok
}

// step runs body for caps: an error or panic fails each cap it left undecided.
// Caps pass only by an explicit passed(); whatever no step decided is reported
// as failed ("not checked") when the phase ends.
func (r *report) step(name string, caps []string, body func() error) {
	r.mu.Lock()
	r.stepName = name
	r.mu.Unlock()
	logf("--- %s", name)
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		return body()
	}()
	if err == nil {
		return
	}
	message := err.Error()
	if _, ok := err.(*CheckFailed); !ok {
		logf("%s: error: %s", name, message)
		message = strings.SplitN(message, "\n", 2)[0]
	}
	for _, cap := range caps {
		if !r.decided(cap) {
			r.failed(cap, message)
		}
	}
}

// emitAndExit prints the COMPAT line and ends the process, even if library goroutines linger.
func (r *report) emitAndExit(reason string) {
	r.mu.Lock()
	if r.emitted {
		r.mu.Unlock()
		return
	}
	r.emitted = true
	failed := false
	for _, cap := range r.capabilities {
		if _, ok := r.checks[cap]; !ok {
			r.checks[cap] = "fail"
			if reason != "" {
				r.notes[cap] = reason
			} else {
				r.notes[cap] = "not checked (stopped at: " + r.stepName + ")"
			}
		}
		failed = failed || r.checks[cap] == "fail"
	}
	line, err := json.Marshal(map[string]any{
		"client": r.client, "version": r.version, "checks": r.checks, "notes": r.notes,
	})
	r.mu.Unlock()
	logMu.Lock() // no progress line may follow the COMPAT line
	if err != nil {
		fmt.Printf("COMPAT encoding failed: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("COMPAT %s\n", line)
	if failed {
		os.Exit(1)
	}
	os.Exit(0)
}
