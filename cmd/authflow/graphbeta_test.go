package main

import (
	"io"
	"testing"
)

// TestGraphBetaFlag: --graph-beta reaches worker.Config, from the command
// line or its AUTHFLOW_GRAPH_BETA twin; off by default.
func TestGraphBetaFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  string
		want bool
	}{
		{"default off", nil, "", false},
		{"flag", []string{"--graph-beta", "default-method"}, "", true},
		{"repeated and spaced", []string{"--graph-beta", "default-method, default-method"}, "", true},
		{"environment", nil, "default-method", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("AUTHFLOW_GRAPH_BETA", tt.env)
			}
			var f workerFlags
			fs := f.register("worker", io.Discard)
			if err := parseFlags(fs, tt.args); err != nil {
				t.Fatal(err)
			}
			if got := f.config(nil).BetaDefaultMethod; got != tt.want {
				t.Fatalf("BetaDefaultMethod = %t, want %t (flag %q)", got, tt.want, f.beta.String())
			}
		})
	}
}
