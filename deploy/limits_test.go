package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// maxPayload is the one message size limit of a deployment: the NATS servers' max_payload and
// the MaxMsgSize of the worker's streams (worker.New). The worker's decoder limit is smaller,
// so an event between the two is stored, rejected and dead-lettered with a bounded copy,
// instead of being refused by nobody and handed back for ever.
const maxPayload = 1 << 20

// payloadProblem loads a NATS server configuration and says what is wrong with its
// max_payload, or "" when it sets exactly maxPayload.
func payloadProblem(path string) string {
	m, err := conf.ParseFile(path)
	if err != nil {
		return fmt.Sprintf("%s: %v", path, err)
	}
	if _, ok := m["max_payload"]; !ok {
		return fmt.Sprintf("%s: max_payload not set: set `max_payload: 1MB` (the server default may change, and the streams' MaxMsgSize is 1 MiB)", path)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return fmt.Sprintf("%s: %v", path, err)
	}
	if opts.MaxPayload != maxPayload {
		return fmt.Sprintf("%s: max_payload %d, want exactly %d (1MB): the MaxMsgSize of the worker's streams", path, opts.MaxPayload, maxPayload)
	}
	return ""
}

func TestPayloadProblem(t *testing.T) {
	tests := []struct {
		name, text string
		ok         bool
	}{
		{"1MB", "max_payload: 1MB\n", true},
		{"bytes", "max_payload: 1048576\n", true},
		{"unset", "port: 4222\n", false},
		{"larger", "max_payload: 2MB\n", false},
		{"smaller", "max_payload: 512KB\n", false},
		{"one byte more", "max_payload: 1048577\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nats.conf")
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			if p := payloadProblem(path); (p == "") != tt.ok {
				t.Errorf("payloadProblem(%q) = %q, want ok=%v", tt.text, p, tt.ok)
			}
		})
	}
}

// TestMaxPayload: every NATS server this directory configures (the node configurations
// compose runs, accounts.conf, the Helm chart's values) sets max_payload to exactly 1 MiB,
// nothing else in the directory sets it, and the worker's decoder limit is below it.
func TestMaxPayload(t *testing.T) {
	natsPasswords(t)
	if events.DefaultMaxBytes >= maxPayload || worker.DefaultMaxEventBytes >= maxPayload {
		t.Errorf("decoder limits %d (events) and %d (worker) must stay below max_payload %d, or no oversized event can be dead-lettered",
			events.DefaultMaxBytes, worker.DefaultMaxEventBytes, maxPayload)
	}

	checked := map[string]bool{} // slash paths relative to deploy/
	confs, err := filepath.Glob(filepath.Join("nats", "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(confs) < 4 {
		t.Fatalf("nats/*.conf: %v, want the three nodes and accounts.conf", confs)
	}
	for _, path := range confs {
		if p := payloadProblem(path); p != "" {
			t.Error(p)
		}
		checked[filepath.ToSlash(path)] = true
	}

	// compose runs those files and no other.
	for name, s := range loadCompose(t).Services {
		if s.Image != "authflow-nats:dev" {
			continue
		}
		cfg := flagValues(append(slices.Clone([]string(s.Entrypoint)), s.Command...), "config")
		if len(cfg) != 1 {
			t.Errorf("compose %s: --config %q, want one", name, cfg)
			continue
		}
		found := false
		for _, v := range s.Volumes {
			parts := strings.Split(v.Value, ":")
			if len(parts) >= 2 && parts[1] == cfg[0] {
				found = true
				if src := filepath.ToSlash(filepath.Clean(parts[0])); !checked[src] {
					t.Errorf("compose %s runs %s, which is not one of the checked nats/*.conf", name, src)
				}
			}
		}
		if !found {
			t.Errorf("compose %s: no volume mounts its --config %s", name, cfg[0])
		}
	}

	// The Helm values: config.merge is merged into the server configuration.
	docs, err := yamlDocs(filepath.Join("helm", "nats-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Config struct {
			Merge map[string]any `yaml:"merge"`
		} `yaml:"config"`
	}
	if err := docs[0].Decode(&values); err != nil {
		t.Fatal(err)
	}
	rendered, _ := renderMerge(t, values.Config.Merge)
	merged := filepath.Join(t.TempDir(), "helm-merge.conf")
	if err := os.WriteFile(merged, rendered, 0o600); err != nil {
		t.Fatal(err)
	}
	if p := payloadProblem(merged); p != "" {
		t.Errorf("helm/nats-values.yaml config.merge: %s", p)
	}
	checked["helm/nats-values.yaml"] = true

	// Nowhere else: a second setting would be a second, unchecked limit.
	setting := regexp.MustCompile(`(?i)max[_-]?payload`)
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".go", ".md":
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			code, _, _ := strings.Cut(line, "#")
			if setting.MatchString(code) && !checked[filepath.ToSlash(path)] {
				t.Errorf("%s:%d sets a payload limit outside the checked configurations: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
