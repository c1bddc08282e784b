package node

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ProvisionedBase: the controller-manager's hostPath provisioner makes each volume's
// directory under this path (k8s.io/kubernetes/pkg/volume/hostpath).
const ProvisionedBase = "/tmp/hostpath_pv/"

// IsProvisioned says whether path is a volume the hostPath provisioner made
// (and so one `sandbox down` may delete).
func IsProvisioned(path string) bool {
	clean := filepath.Clean(path)
	return strings.HasPrefix(clean, ProvisionedBase) && len(clean) > len(ProvisionedBase)
}

// ProvisionedRecord lists the provisioned volumes the agent mounted, one a
// line: they outlive pods and the agent (that is their point) but not the
// sandbox, whose `down` removes them.
func ProvisionedRecord(dir string) string { return filepath.Join(dir, "provisioned-volumes") }

var recordMu sync.Mutex

func recordProvisioned(dir, path string) error {
	if !IsProvisioned(path) {
		return nil
	}
	recordMu.Lock()
	defer recordMu.Unlock()
	raw, _ := os.ReadFile(ProvisionedRecord(dir))
	for _, l := range strings.Split(string(raw), "\n") {
		if l == path {
			return nil
		}
	}
	f, err := os.OpenFile(ProvisionedRecord(dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(path + "\n")
	return err
}
