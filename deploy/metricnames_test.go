package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/ingress"
	"github.com/authflow/authflow/notify"
	"github.com/authflow/authflow/worker"
)

// Every metric a Grafana panel or an alert rule names must exist where Prometheus scrapes it.
// The expressions come from the dashboard (panels and template variables), the monitoring
// component's PrometheusRule and the Helm chart's rendered one; the series from the /metrics of
// a worker and of an ingress started here, after one event went through both. For each
// expression it checks: every authflow_ metric name is exported (the ingress's authflow_ingress_
// ones by the ingress, the rest by the worker); every label an equality matcher names has that
// value on some series, and every label of another matcher or of a by (...) clause exists on a
// series of a metric of the expression. Labels Prometheus adds when it scrapes (instance, job,
// namespace, service, pod) and the scrape series up are not the programs' business. Alert
// metrics must exist already before the first event: an alert over a series that appears only
// with its first occurrence would miss that occurrence.

// scrapeLabels are added by Prometheus (or the Prometheus Operator) at scrape time.
var scrapeLabels = []string{"instance", "job", "namespace", "service", "pod", "container", "endpoint"}

// valueKey holds a sample's value among its labels (no label name starts with two underscores).
const valueKey = "__value"

// series maps a metric name (as exposed: histograms as _bucket, _sum and _count) to the
// label sets of its series.
type series map[string][]map[string]string

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// parseExposition reads the Prometheus text format.
func parseExposition(t *testing.T, text string) series {
	t.Helper()
	s := series{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unparsable exposition line %q", line)
		}
		labels := map[string]string{valueKey: m[3]}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			labels[p[1]] = p[2]
		}
		s[m[1]] = append(s[m[1]], labels)
	}
	return s
}

func scrape(t *testing.T, url string) series {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s\n%s", url, resp.Status, body)
	}
	return parseExposition(t, string(body))
}

var (
	metricName = regexp.MustCompile(`\bauthflow_[a-z0-9_]+\b`)
	selector   = regexp.MustCompile(`\b(authflow_[a-z0-9_]+)\{([^}]*)\}`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	byClause   = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// checkExpr reports what expr names that the scraped series do not have.
func checkExpr(t *testing.T, where, expr string, worker, ingress series) {
	t.Helper()
	for _, p := range exprProblems(expr, worker, ingress) {
		t.Errorf("%s: %s (%s)", where, p, expr)
	}
}

// exprProblems lists what expr names that the series do not have.
func exprProblems(expr string, worker, ingress series) []string {
	var problems []string
	of := func(name string) series {
		if strings.HasPrefix(name, "authflow_ingress_") {
			return ingress
		}
		return worker
	}
	names := metricName.FindAllString(expr, -1)
	for _, n := range names {
		if len(of(n)[n]) == 0 {
			problems = append(problems, n+" is not on the /metrics of a running "+who(n))
		}
	}
	hasLabel := func(label string, metrics []string, value *string) bool {
		for _, n := range metrics {
			for _, ls := range of(n)[n] {
				if v, ok := ls[label]; ok && (value == nil || v == *value) {
					return true
				}
			}
		}
		return false
	}
	for _, sel := range selector.FindAllStringSubmatch(expr, -1) {
		for _, m := range matcher.FindAllStringSubmatch(sel[2], -1) {
			label, op, value := m[1], m[2], m[3]
			if slices.Contains(scrapeLabels, label) {
				continue
			}
			var want *string
			if op == "=" {
				want = &value
			}
			if !hasLabel(label, []string{sel[1]}, want) {
				problems = append(problems, fmt.Sprintf("no series of %s has %s%s%q", sel[1], label, op, value))
			}
		}
	}
	for _, by := range byClause.FindAllStringSubmatch(expr, -1) {
		for _, label := range strings.Split(by[1], ",") {
			label = strings.TrimSpace(label)
			if label == "" || label == "le" || slices.Contains(scrapeLabels, label) {
				continue // le: every _bucket series has it
			}
			if !hasLabel(label, names, nil) {
				problems = append(problems, fmt.Sprintf("by (%s): no series of %v has the label %s", by[1], names, label))
			}
		}
	}
	return problems
}

func who(name string) string {
	if strings.HasPrefix(name, "authflow_ingress_") {
		return "ingress"
	}
	return "worker"
}

// dashboardExprs returns the queries of every panel and template variable.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join("grafana", "authflow-dashboard.json")), &d); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			out["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			out["variable $"+v.Name] = v.Definition
		}
	}
	return out
}

// ruleExprs returns the expression of every alert in the PrometheusRule documents of data.
func ruleExprs(t *testing.T, name string, data []byte) map[string]string {
	t.Helper()
	objs, err := decodeTyped(name, data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	out := map[string]string{}
	for _, o := range objs {
		pr, ok := o.(*monitoringv1.PrometheusRule)
		if !ok {
			continue
		}
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				out[name+" alert "+r.Alert] = r.Expr.String()
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no alert rules", name)
	}
	return out
}

func TestDashboardAndAlertMetricsExist(t *testing.T) {
	workerURL, ingressURL, sendOne := startWorkerAndIngress(t)
	atStart := scrape(t, workerURL)
	sendOne()
	workerSeries, ingressSeries := scrape(t, workerURL), scrape(t, ingressURL)

	panels := dashboardExprs(t)
	if len(panels) < 30 {
		t.Fatalf("only %d dashboard queries found", len(panels))
	}
	for where, expr := range panels {
		checkExpr(t, where, expr, workerSeries, ingressSeries)
	}
	// Panels the issues asked for.
	all := strings.Join(slices.Collect(mapValues(panels)), "\n")
	for _, m := range []string{"authflow_graph_request_duration_seconds_bucket", "authflow_deliveries_total",
		"authflow_graph_concurrency_limit", "authflow_build_info", "authflow_ingress_requests_total",
		"authflow_ingress_request_duration_seconds_bucket", "authflow_order_waits_total", "authflow_rate_limited_total",
		"authflow_notifications_sent_total", "authflow_notifications_failed_total", "authflow_notifications_skipped_total",
		"authflow_notification_retries_total"} {
		if !strings.Contains(all, m) {
			t.Errorf("no panel shows %s", m)
		}
	}

	rules := ruleExprs(t, "components/monitoring", mustRead(t, filepath.Join("k8s", "components", "monitoring", "prometheusrule.yaml")))
	t.Run("helm", func(t *testing.T) {
		requireHelm(t)
		out := helm(t, "template", "authflow", chartDir, "--namespace", "authflow",
			"--set", "metrics.prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml")
		for where, expr := range ruleExprs(t, "helm chart", out) {
			checkExpr(t, where, expr, workerSeries, ingressSeries)
			checkExpr(t, where+" (before any event)", expr, atStart, ingressSeries)
		}
	})
	for where, expr := range rules {
		checkExpr(t, where, expr, workerSeries, ingressSeries)
		checkExpr(t, where+" (before any event)", expr, atStart, ingressSeries)
	}
}

// TestCheckExprCatches: the checker of TestDashboardAndAlertMetricsExist finds a missing
// metric, a label value no series has, and a by-label no series has.
func TestCheckExprCatches(t *testing.T) {
	w := series{"authflow_events_total": {{"type": "a", "outcome": "failed"}}}
	for _, c := range []struct {
		expr string
		bad  bool
	}{
		{`sum by (outcome) (rate(authflow_events_total{instance=~"$instance", outcome="failed"}[5m]))`, false},
		{`sum(up{namespace="x"}) < 1 or sum(rate(authflow_events_total[5m]))`, false},
		{`sum(rate(authflow_event_total[5m]))`, true},
		{`sum(rate(authflow_events_total{outcome="succeded"}[5m]))`, true},
		{`sum(rate(authflow_events_total{status!~"2.."}[5m]))`, true},
		{`sum by (op) (rate(authflow_events_total[5m]))`, true},
		{`sum(rate(authflow_ingress_requests_total[5m]))`, true},
	} {
		if got := exprProblems(c.expr, w, series{}); (len(got) > 0) != c.bad {
			t.Errorf("%s: problems %q, want some: %t", c.expr, got, c.bad)
		}
	}
}

// counted reports whether the worker counted a succeeded event.
func counted(s series) bool {
	for _, ls := range s["authflow_events_total"] {
		if ls["outcome"] == "succeeded" && ls["type"] == events.TypeMethodsInventory && ls[valueKey] != "0" {
			return true
		}
	}
	return false
}

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// startWorkerAndIngress runs an embedded JetStream server, the Graph emulator, a worker
// and an ingress, each with its /metrics on 127.0.0.1 as the CLI serves them. sendOne posts
// one event to the ingress and waits for the worker's result.
func startWorkerAndIngress(t *testing.T) (workerMetrics, ingressMetrics string, sendOne func()) {
	t.Helper()
	ns, err := server.NewServer(&server.Options{ServerName: "metrics", Host: "127.0.0.1", Port: -1,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	emu := graphclienttest.NewServer(t)
	const upn = "metrics.user@contoso.example"
	if err := emu.PutUser(graphclienttest.User{ID: "7d1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0077", UserPrincipalName: upn}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics := worker.NewMetrics(reg)
	g, err := graphclient.New(graphclient.Config{BaseURL: emu.GraphURL, Token: emu.Token, Observe: metrics.ObserveGraph})
	if err != nil {
		t.Fatal(err)
	}
	// A policy with a limit and a notification sender, so that the series of both exist.
	policy, err := events.ParsePolicy([]byte(`
version: 1
sources:
  hr/metrics:
    types: ["*"]
limits:
  - name: taps-per-user
    per: user
    types: [authflow.tap.issue.v1]
    max: 3
    window: 24h
`))
	if err != nil {
		t.Fatal(err)
	}
	const senderID = "7d1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0078"
	if err := emu.PutUser(graphclienttest.User{ID: senderID, UserPrincipalName: "notify@contoso.example", Mail: "notify@contoso.example"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(ctx, worker.Config{NATS: nc, Graph: g, Policy: policy, Partitions: 2,
		Replicas: 1, AckWait: 5 * time.Second, ShutdownTimeout: time.Second, Logger: quiet, Metrics: metrics})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// The notification deliverer, as authflow worker --notify-sender runs it, on the topology
	// the worker made.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := notify.NewDeliverer(ctx, notify.Config{JetStream: js, Mailer: g, Sender: senderID, Templates: notify.DefaultTemplates(),
		IsTransient: graphclient.IsTransient, RetryAfter: graphclient.RetryAfter, Metrics: notify.NewMetrics(reg), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ndDone := make(chan error, 1)
	go func() { ndDone <- nd.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ndDone })
	wsrv := httptest.NewServer(w.Handler(reg, g.CheckToken))
	t.Cleanup(wsrv.Close)

	signer, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	const token = "metrics-test-token"
	ireg := prometheus.NewRegistry()
	in, err := ingress.New(ingress.Options{NATS: nc, Registerer: ireg, Logger: quiet, Config: &ingress.Config{
		Sources: map[string]*ingress.Source{"*": {Name: "*", AnySource: true, Signer: signer,
			Auth: ingress.Auth{Bearer: &ingress.BearerAuth{TokenHashes: [][sha256.Size]byte{sha256.Sum256([]byte(token))}}}}},
		Routes: map[string]*ingress.Route{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	isrv := httptest.NewServer(in.Handler())
	t.Cleanup(isrv.Close)
	imetrics := httptest.NewServer(promhttp.HandlerFor(ireg, promhttp.HandlerOpts{}))
	t.Cleanup(imetrics.Close)

	sendOne = func() {
		results := make(chan *nats.Msg, 8)
		sub, err := nc.ChanSubscribe(worker.ResultsSubjectPrefix+">", results)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		body, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": "metrics-1", "source": "hr/metrics",
			"type": events.TypeMethodsInventory, "subject": upn, "time": time.Now().UTC().Format(time.RFC3339), "data": map[string]any{}})
		req, _ := http.NewRequest(http.MethodPost, isrv.URL+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/cloudevents+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("ingress: %s\n%s", resp.Status, answer)
		}
		select {
		case m := <-results:
			if r, err := events.DecodeResult(m.Data); err != nil || r.Data.Status != events.StatusSucceeded {
				t.Fatalf("result %s (%v)", m.Data, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no result within 20s")
		}
		// The worker counts an event after acking it, just after the result went out.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if counted(scrape(t, wsrv.URL+"/metrics")) {
				return
			}
		}
		t.Fatal("the event's result came, but the worker did not count it within 10s")
	}
	return wsrv.URL + "/metrics", imetrics.URL + "/metrics", sendOne
}
