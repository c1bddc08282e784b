//go:build tools

// Package prom pins the Prometheus module whose promtool the rule tests run
// (scripts/promtool-build.sh builds github.com/prometheus/prometheus/cmd/promtool
// at the version go.mod names).
package prom

import _ "github.com/prometheus/prometheus/cmd/promtool"
