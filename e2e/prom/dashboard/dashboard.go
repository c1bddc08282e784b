// Package dashboard checks a Grafana dashboard's PromQL with Prometheus's own parser:
// every panel target and every label_values() variable query must parse, and every
// metric it names must be one the broker exports (compared with a real scrape).
package dashboard

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// Query is one PromQL expression of the dashboard and where it is.
type Query struct {
	Where string
	Expr  string
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type dashboardJSON struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

// Queries returns every PromQL expression in the dashboard: panel targets (rows'
// nested panels included) and the selector inside label_values() variable queries.
func Queries(data []byte) ([]Query, error) {
	var d dashboardJSON
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("dashboard JSON: %w", err)
	}
	var out []Query
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) != "" {
					out = append(out, Query{Where: fmt.Sprintf("panel %q target %s", p.Title, t.RefID), Expr: t.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				return nil, fmt.Errorf("variable %s: query is neither a string nor an object", v.Name)
			}
			q = obj.Query
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			return nil, fmt.Errorf("variable %s: only label_values(<selector>, <label>) is supported, got %q", v.Name, q)
		}
		out = append(out, Query{Where: fmt.Sprintf("variable %s", v.Name), Expr: m[1]})
	}
	return out, nil
}

// Grafana's built-in interval variables, replaced by a duration so the parser sees
// PromQL; dashboard variables only appear inside label matcher strings.
var grafanaDurations = strings.NewReplacer(
	"$__rate_interval", "5m",
	"${__rate_interval}", "5m",
	"$__interval", "1m",
	"${__interval}", "1m",
	"$__range", "1h",
	"${__range}", "1h",
)

// Metrics parses expr with Prometheus's parser and returns the metric names it selects.
func Metrics(expr string) ([]string, error) {
	p := parser.NewParser(parser.Options{})
	ast, err := p.ParseExpr(grafanaDurations.Replace(expr))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var names []string
	var missing error
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name == "" {
			missing = fmt.Errorf("selector %s names no metric", vs.String())
			return nil
		}
		if !seen[vs.Name] {
			seen[vs.Name] = true
			names = append(names, vs.Name)
		}
		return nil
	})
	if missing != nil {
		return nil, missing
	}
	sort.Strings(names)
	return names, nil
}

// Exported returns the series names a text-format scrape holds: each family's name, and
// for histograms and summaries their _bucket/_sum/_count series.
func Exported(scrape io.Reader) (map[string]bool, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(scrape)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for name, f := range families {
		out[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name+"_sum"], out[name+"_count"] = true, true
		}
	}
	return out, nil
}

// Check parses every query and, when exported is not nil, reports metric names that are
// neither exported nor in external (series other components provide: up, kubelet's).
func Check(queries []Query, exported map[string]bool, external []string) []string {
	ext := map[string]bool{}
	for _, e := range external {
		ext[e] = true
	}
	var problems []string
	for _, q := range queries {
		names, err := Metrics(q.Expr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", q.Where, err))
			continue
		}
		if exported == nil {
			continue
		}
		for _, n := range names {
			if !exported[n] && !ext[n] {
				problems = append(problems, fmt.Sprintf("%s: %s is not exported by the broker", q.Where, n))
			}
		}
	}
	return problems
}

// External lists the series the dashboard may read that no broker exports.
var External = []string{"up", "kubelet_volume_stats_available_bytes", "kubelet_volume_stats_capacity_bytes"}
