package sandbox

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"strom/e2e/kube/internal/node"
)

//go:embed coredns.yaml
var corednsManifest string

// DeployClusterDNS applies CoreDNS (a Deployment run by the node agent, the
// kube-dns Service on the cluster DNS address) with the built kubectl and
// waits until it is available, as a kubeadm cluster comes up with it.
func DeployClusterDNS(ctx context.Context, c Cluster, kubeconfig string, timeout time.Duration) error {
	manifest := strings.NewReplacer("CLUSTER_DNS", c.ClusterDNS().String(), "CLUSTER_DOMAIN", node.ClusterDomain).Replace(corednsManifest)
	kubectl := func(stdin string, args ...string) error {
		cmd := exec.CommandContext(ctx, c.bin("kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out.String())
		}
		return nil
	}
	if err := kubectl(manifest, "apply", "-f", "-"); err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	if err := kubectl("", "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout="+timeout.String()); err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	return nil
}
