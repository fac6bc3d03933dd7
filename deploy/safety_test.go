package deploy

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// TestSafetyMonitoring: the helpdesk safeguards (issue 13) — notifications
// failing, rate limits hit, approvals waiting — each have a dashboard panel
// and an alert of their own in the monitoring component (the chart's rules
// are the same: TestHelmChartAlerts; their metrics exist:
// TestDashboardAndAlertMetricsExist).
func TestSafetyMonitoring(t *testing.T) {
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join("grafana", "authflow-dashboard.json")), &d); err != nil {
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
		shown := false
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				shown = shown || re.MatchString(tg.Expr)
			}
		}
		if !shown {
			t.Errorf("no dashboard panel shows %s", tt.metric)
		}
		if expr, ok := alerts[tt.alert]; !ok || !re.MatchString(expr) {
			t.Errorf("alert %s: expr %q, want one on %s", tt.alert, expr, tt.metric)
		}
	}
}
