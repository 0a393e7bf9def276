package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
)

// The Grafana dashboard (deploy/grafana) and the alert rules
// (deploy/prometheus) are checked against a live gateway: every
// expression parses with Prometheus' own PromQL parser, and every metric
// it names is one the gateway exposes on /metrics once it has served a
// pixel and rejected a batch.

// ruleFile is the Prometheus rule file format; a field it does not have
// fails the strict decode.
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert       string            `json:"alert,omitempty"`
			Record      string            `json:"record,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// dashPanel is the part of a Grafana panel that holds queries.
type dashPanel struct {
	Title   string      `json:"title"`
	Type    string      `json:"type"`
	Panels  []dashPanel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

type dashboard struct {
	Title      string      `json:"title"`
	UID        string      `json:"uid"`
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// grafanaVars are Grafana's variables, replaced as Grafana would before
// the query reaches Prometheus.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__range", "6h", "$__interval", "1m", "$instance", ".*")

// labelValues is Grafana's variable query label_values(metric, label).
var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)

// metricsIn parses expr with the PromQL parser and returns the metric
// names it selects.
func metricsIn(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: PromQL does not parse: %v\n%s", where, err, expr)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%s: a selector without a metric name: %s", where, vs)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "prometheus", "beacongate-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := strictDecode(b, &rf); err != nil {
		t.Fatalf("beacongate-rules.yaml is not a Prometheus rule file: %v", err)
	}
	return rf
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "grafana", "beacongate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("beacongate.json: %v", err)
	}
	return d
}

// scrapeNames returns the names of the samples on the gateway's /metrics.
func scrapeNames(t *testing.T, g *gateway) map[string]bool {
	t.Helper()
	_, _, body := get(t, "http://"+g.admin+"/metrics")
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			names[l[:i]] = true
		}
	}
	return names
}

// alertTemplateDefs are the variables Prometheus defines before an
// annotation's template.
const alertTemplateDefs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"

// alertTemplateFuncs are the template functions of Prometheus' alert
// annotations that the rules use (values do not matter: only parsing).
var alertTemplateFuncs = template.FuncMap{
	"humanize": func(any) string { return "" }, "humanizeDuration": func(any) string { return "" },
	"humanizePercentage": func(any) string { return "" },
}

func TestDashboardAndAlertsNameExposedMetrics(t *testing.T) {
	// Every expression, by where it is.
	exprs := map[string]string{}
	rf := readRules(t)
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			if (r.Alert == "") == (r.Record == "") {
				t.Errorf("rule %q: exactly one of alert and record", name)
			}
			if alerts[name] {
				t.Errorf("rule %s twice", name)
			}
			alerts[name] = true
			exprs["rule "+name] = r.Expr
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for %q: %v", name, r.For, err)
				}
			}
			if r.Alert != "" && r.Labels["severity"] == "" {
				t.Errorf("alert %s has no severity label", name)
			}
			for k, v := range r.Annotations {
				if _, err := template.New(k).Funcs(alertTemplateFuncs).Parse(alertTemplateDefs + v); err != nil {
					t.Errorf("alert %s: annotation %s: %v", name, k, err)
				}
			}
		}
	}
	for _, want := range []string{"BeacongateRecordsLost", "BeacongateRecordsPossiblyLost", "BeacongateSpoolGrowing",
		"BeacongateSpoolOld", "BeacongateFleetNotReady", "BeacongateRejectionRate", "BeacongateProducerQueueHigh"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}

	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	var walk func(ps []dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for i, tg := range p.Targets {
				exprs["panel "+p.Title+" #"+string(rune('A'+i))] = grafanaVars.Replace(tg.Expr)
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("dashboard variable %s: %q is not label_values(metric, label)", v.Name, v.Definition)
			continue
		}
		exprs["variable "+v.Name] = m[1]
	}

	used := map[string][]string{} // metric → where
	for where, e := range exprs {
		for _, n := range metricsIn(t, where, e) {
			used[n] = append(used[n], where)
		}
	}
	// What an on-call person needs on the dashboard.
	for _, want := range []string{"beacongate_events_accepted_total", "beacongate_events_rejected_total",
		"beacongate_http_request_duration_seconds_bucket", "beacongate_kafka_queue_messages",
		"beacongate_kafka_queue_capacity_messages", "beacongate_kafka_delivery_latency_seconds_bucket",
		"beacongate_kafka_broker_up", "beacongate_kafka_broker_rtt_seconds", "beacongate_spool_records",
		"beacongate_spool_bytes", "beacongate_spool_oldest_age_seconds", "beacongate_spool_active",
		"beacongate_dead_letters_total", "beacongate_records_lost_total", "beacongate_records_possibly_lost_total"} {
		if len(used[want]) == 0 {
			t.Errorf("neither the dashboard nor the rules show %s", want)
		}
	}
	if t.Failed() {
		return
	}

	// A live gateway, after one pixel and one rejected batch (which also
	// makes a dead letter), so that labelled metrics have a child.
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons", "beacons-dlq"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := startGateway(t, "-kafka.brokers", b.Addr(), "-kafka.dlq-topic", "beacons-dlq")
	if code, _, _ := get(t, "http://"+g.http+"/i?uid=dash&ev=pageview"); code != 200 {
		t.Fatalf("pixel: %d", code)
	}
	if code := postBatch(t, g, "text/csv", "a,b"); code != 415 {
		t.Fatalf("batch with a bad content type: %d, want 415", code)
	}
	var exposed map[string]bool
	missing := func() []string {
		exposed = scrapeNames(t, g)
		var out []string
		for n := range used {
			if !exposed[n] {
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return out
	}
	// Statistics and the delivery reports come within a few seconds.
	deadline := time.Now().Add(15 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	for _, n := range missing() {
		t.Errorf("%s is not exposed by the gateway; used by %v", n, used[n])
	}
}

func postBatch(t *testing.T, g *gateway, contentType, body string) int {
	t.Helper()
	resp, err := http.Post("http://"+g.http+"/batch", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
