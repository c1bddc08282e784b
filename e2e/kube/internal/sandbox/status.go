package sandbox

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
)

// Status prints one line per component: pid, whether it runs, its health
// check's answer, and its log. It returns an error unless all are healthy.
func Status(l Layout, out io.Writer) error {
	st, err := LoadState(l)
	if errors.Is(err, ErrNoState) {
		return fmt.Errorf("no sandbox in %s", l.Dir)
	}
	if err != nil {
		return err
	}
	client, err := HealthClient(l)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "COMPONENT\tPID\tPROCESS\tHEALTH\tLOG")
	unhealthy := 0
	for _, p := range st.Procs {
		process, health := "running", "ok"
		if !p.Alive() {
			process, health = "exited", "-"
			unhealthy++
		} else if err := Check(client, p.Health); err != nil {
			health = err.Error()
			unhealthy++
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", p.Name, p.PID, process, health, p.Log)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "kubeconfig: %s\n", st.Kubeconfig)
	if unhealthy > 0 {
		return fmt.Errorf("%d of %d components not healthy", unhealthy, len(st.Procs))
	}
	return nil
}
