package dashboard

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const sample = `{
  "panels": [
    {"title": "row", "type": "row", "panels": [
      {"title": "nested", "targets": [{"refId": "A", "expr": "sum(rate(a_total{pod=~\"$cluster-broker-[0-9]+\"}[$__rate_interval]))"}]}
    ]},
    {"title": "latency", "targets": [
      {"refId": "A", "expr": "histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))"},
      {"refId": "B", "expr": ""}
    ]}
  ],
  "templating": {"list": [
    {"name": "datasource", "type": "datasource", "query": "prometheus"},
    {"name": "ns", "type": "query", "query": {"query": "label_values(g{x=\"1\"}, namespace)"}}
  ]}
}`

func TestQueriesFindsTargetsAndVariables(t *testing.T) {
	qs, err := Queries([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, q := range qs {
		exprs = append(exprs, q.Expr)
	}
	want := []string{
		`sum(rate(a_total{pod=~"$cluster-broker-[0-9]+"}[$__rate_interval]))`,
		`histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))`,
		`g{x="1"}`,
	}
	if !reflect.DeepEqual(exprs, want) {
		t.Fatalf("got %q, want %q", exprs, want)
	}
}

func TestMetricsParsesAndNames(t *testing.T) {
	names, err := Metrics(`sum(b{a="$x"}) / sum(rate(a[$__rate_interval] offset 5m))`)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(names, []string{"a", "b"}) {
		t.Fatalf("got %v", names)
	}
	if _, err := Metrics(`sum(rate(a[5m])`); err == nil {
		t.Fatal("an unbalanced parenthesis parses")
	}
	if _, err := Metrics(`rate(a[$__nonsense])`); err == nil {
		t.Fatal("an unknown Grafana variable in a duration parses")
	}
	if _, err := Metrics(`{job="x"}`); err == nil {
		t.Fatal("a selector without a metric name is accepted")
	}
}

func TestCheckComparesWithTheScrape(t *testing.T) {
	exported, err := Exported(strings.NewReader(`# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 1
h_sum 0.5
h_count 1
# TYPE g gauge
g 1
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"h", "h_bucket", "h_sum", "h_count", "g"} {
		if !exported[n] {
			t.Fatalf("%s missing from %v", n, exported)
		}
	}
	qs := []Query{{"ok", `rate(h_bucket[5m]) + g`}, {"up", `up == 0`}, {"bad", `nope`}, {"broken", `g{`}}
	problems := Check(qs, exported, []string{"up"})
	if len(problems) != 2 || !strings.Contains(problems[0], "nope is not exported") || !strings.HasPrefix(problems[1], "broken:") {
		t.Fatalf("problems: %q", problems)
	}
}

// The chart's dashboard: every expression parses (metric names are compared with a
// real broker's scrape by e2e/cluster/tests/prometheus_rules.rs through cmd/dashcheck).
func TestChartDashboardParses(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "charts", "strom-operator", "files", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	qs, err := Queries(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 20 {
		t.Fatalf("only %d queries found", len(qs))
	}
	if problems := Check(qs, nil, nil); len(problems) > 0 {
		t.Fatalf("%d problems:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}
