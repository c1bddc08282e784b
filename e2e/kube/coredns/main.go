// Command coredns is CoreDNS built with the plugins the sandbox's cluster
// DNS uses (the Corefile of kubeadm, less the ones that reach outside the
// machine). A module of its own: CoreDNS's dependencies stay out of the
// Kubernetes components' build.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives is the plugin order CoreDNS's own build uses (plugin.cfg),
// restricted to the plugins linked above.
var directives = []string{"reload", "health", "ready", "errors", "log", "loop", "cache", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
