package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// benchBudget is the emulator's Graph budget in the benchmark, requests/s.
const benchBudget = 100

// BenchmarkReconcileAtBudget measures users reconciled per second when
// Graph allows benchBudget requests per second (the emulator's token
// bucket, honest Retry-After beyond it). Every user is active with a
// registered mobile, so each needs one read of its methods: the budget
// allows benchBudget users/s, less the scan pages. of_budget is users/s
// over benchBudget. Sub-benchmarks: --rate at the budget, and no rate of
// our own (the throttle and Retry-After alone). Run with -benchtime 1x.
func BenchmarkReconcileAtBudget(b *testing.B) {
	const users = 1000
	emu := graphclienttest.NewServer(b)
	var csv strings.Builder
	csv.WriteString("user,status,mobile\n")
	for i := range users {
		m := json.RawMessage(fmt.Sprintf(`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":%q,"phoneType":"mobile"}`, mobile(i)))
		if err := emu.PutUser(graphclienttest.User{ID: userID(i), UserPrincipalName: userUPN(i), Methods: []json.RawMessage{m}}); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&csv, "%s,active,%s\n", userUPN(i), mobile(i))
	}
	d, err := Read(strings.NewReader(csv.String()), FormatCSV, "US")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		rate float64
	}{{"rate=budget", benchBudget}, {"rate=none", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			emu.ResetStats()
			var elapsed time.Duration
			for b.Loop() {
				// A fresh bucket per sweep, so no sweep inherits a debt.
				if err := emu.SetFaults(graphclienttest.Faults{ThrottleRPS: benchBudget}); err != nil {
					b.Fatal(err)
				}
				r, err := New(Config{Graph: newClient(b, emu), Rate: bc.rate, Concurrency: 8})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				rep, err := r.Run(context.Background(), d.Rows)
				elapsed += time.Since(start)
				if err != nil || rep.Checked != users || len(rep.Drift) != 0 || len(rep.Errors) != 0 {
					b.Fatalf("run: %v, %d checked, %d drift, %d errors", err, rep.Checked, len(rep.Drift), len(rep.Errors))
				}
			}
			perSec := float64(users*b.N) / elapsed.Seconds()
			b.ReportMetric(perSec, "users/s")
			b.ReportMetric(perSec/benchBudget, "of_budget")
			b.ReportMetric(float64(emu.Stats().Throttled), "429s")
		})
	}
}
