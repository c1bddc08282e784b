package sandbox

import "path/filepath"

// Layout names every file the sandbox keeps in its state directory, so that
// `down` can remove exactly what `up` made.
type Layout struct {
	Dir string
}

// marker is written first by `up`; `down` only ever removes a directory that
// has it, so a mistyped --dir can never delete someone else's files.
const marker = ".strom-kube-sandbox"

func (l Layout) Marker() string         { return filepath.Join(l.Dir, marker) }
func (l Layout) State() string          { return filepath.Join(l.Dir, "state.json") }
func (l Layout) PKI() string            { return filepath.Join(l.Dir, "pki") }
func (l Layout) Logs() string           { return filepath.Join(l.Dir, "logs") }
func (l Layout) EtcdData() string       { return filepath.Join(l.Dir, "etcd") }
func (l Layout) Log(name string) string { return filepath.Join(l.Logs(), name+".log") }

// Cert and Key are the PEM files of one certificate issued by the sandbox CA.
func (l Layout) Cert(name string) string { return filepath.Join(l.PKI(), name+".crt") }
func (l Layout) Key(name string) string  { return filepath.Join(l.PKI(), name+".key") }

// ServiceAccountKey and ServiceAccountPub are the token signing key pair.
func (l Layout) ServiceAccountKey() string { return filepath.Join(l.PKI(), "sa.key") }
func (l Layout) ServiceAccountPub() string { return filepath.Join(l.PKI(), "sa.pub") }

// Kubeconfig is the kubeconfig of one identity (admin, controller-manager, ...).
func (l Layout) Kubeconfig(user string) string {
	return filepath.Join(l.Dir, user+".kubeconfig")
}
