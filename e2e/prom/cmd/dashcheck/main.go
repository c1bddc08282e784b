// Command dashcheck checks a Grafana dashboard's PromQL with Prometheus's parser and
// compares the metric names it uses with scrapes of real brokers:
//
//	dashcheck -dashboard charts/strom-operator/files/grafana-dashboard.json scrape.txt...
//
// Exit status 1 lists every expression that does not parse or names a metric that no
// scrape holds (besides dashboard.External).
package main

import (
	"flag"
	"fmt"
	"os"

	"strom.dev/e2e/prom/dashboard"
)

func main() {
	path := flag.String("dashboard", "", "Grafana dashboard JSON")
	flag.Parse()
	if *path == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: dashcheck -dashboard <file.json> <scrape.txt>...")
		os.Exit(2)
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	queries, err := dashboard.Queries(data)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	exported := map[string]bool{}
	for _, scrape := range flag.Args() {
		f, err := os.Open(scrape)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		names, err := dashboard.Exported(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", scrape, err)
			os.Exit(2)
		}
		for n := range names {
			exported[n] = true
		}
	}
	problems := dashboard.Check(queries, exported, dashboard.External)
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	fmt.Printf("dashcheck: %d expressions parse and name only exported metrics (%d metric names in %d scrapes)\n", len(queries), len(exported), flag.NArg())
}
