package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/limits"
	"github.com/authflow/authflow/notify"
)

// approvalsPending is the gauge of events parked for four-eyes approval
// (issue 13), which the worker reports; it is not registered by a package
// this test can call.
const approvalsPending = "authflow_approvals_pending"

// TestSafetyMonitoring: the helpdesk safeguards — notifications failing,
// rate limits hit, approvals waiting — each have a dashboard panel and an
// alert in the monitoring component (the chart's rules are the same:
// TestHelmChartAlerts), on the metric names the code registers.
func TestSafetyMonitoring(t *testing.T) {
	reg := prometheus.NewRegistry()
	notify.NewMetrics(reg)
	limits.NewMetrics(reg, []events.LimitRule{{Name: "r"}})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var registered []string
	for _, f := range families {
		registered = append(registered, f.GetName())
	}
	for _, m := range []string{"authflow_notifications_failed_total", "authflow_notifications_sent_total", "authflow_notification_retries_total", "authflow_rate_limited_total"} {
		if !slices.Contains(registered, m) {
			t.Errorf("%s is not a metric of the notify or limits package (they register %v)", m, registered)
		}
	}

	data, err := os.ReadFile(filepath.Join("grafana", "authflow-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	rules, err := decodeTyped("component rules", mustRead(t, filepath.Join("k8s", "components", "monitoring", "prometheusrule.yaml")))
	if err != nil || len(rules) != 1 {
		t.Fatalf("components/monitoring/prometheusrule.yaml: %v", err)
	}
	alerts := map[string]string{}
	for _, g := range rules[0].(*monitoringv1.PrometheusRule).Spec.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = r.Expr.String()
		}
	}
	for _, tt := range []struct{ metric, alert string }{
		{"authflow_notifications_failed_total", "AuthflowNotificationsFailing"},
		{"authflow_rate_limited_total", "AuthflowRateLimited"},
		{approvalsPending, "AuthflowApprovalsWaiting"},
	} {
		re := regexp.MustCompile(`\b` + tt.metric + `\b`)
		var panels []string
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if re.MatchString(tg.Expr) {
					panels = append(panels, p.Title)
					break
				}
			}
		}
		if len(panels) == 0 {
			t.Errorf("no dashboard panel shows %s", tt.metric)
		}
		if expr, ok := alerts[tt.alert]; !ok || !re.MatchString(expr) {
			t.Errorf("alert %s: expr %q, want one on %s", tt.alert, expr, tt.metric)
		}
	}
}
