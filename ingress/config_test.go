package ingress

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

func seedEnv(t *testing.T) func(string) (string, bool) {
	t.Helper()
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	return func(name string) (string, bool) {
		switch name {
		case "SEED":
			return string(seed), true
		case "WH":
			return whSecretB64, true
		}
		return "", false
	}
}

const minimalSource = `version: 1
sources:
  hr/x:
    auth:
      bearer: {tokenSHA256: ["` + "0000000000000000000000000000000000000000000000000000000000000000" + `"]}
    signingSeed: env:SEED
`

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml, path, msg string
	}{
		{"empty", ``, "", "empty"},
		{"no version", "sources: {}\n", "version", "required"},
		{"bad version", "version: 2\nsources: {}\n", "version", "unsupported"},
		{"version as string", "version: \"1\"\n", "version", "must be an integer"},
		{"unknown top-level key", minimalSource + "listen: x\n", "listen", "unknown setting"},
		{"unknown nested key", strings.Replace(minimalSource, "signingSeed", "signingseed", 1), "sources.hr/x.signingseed", "unknown setting"},
		{"unknown auth kind", strings.Replace(minimalSource, "bearer:", "oauth:", 1), "sources.hr/x.auth.oauth", "unknown setting"},
		{"duplicate key", minimalSource + "version: 1\n", "version", "duplicate key"},
		{"alias", "version: 1\nsources: &a {}\n", "sources", "anchors"},
		{"no sources", "version: 1\n", "sources", "at least one"},
		{"bad source name", strings.Replace(minimalSource, "hr/x:", "'-bad':", 1), "sources.-bad", "not a valid event source"},
		{"no auth", "version: 1\nsources:\n  hr/x:\n    signingSeed: env:SEED\n", "sources.hr/x.auth", "required"},
		{"bad hash", strings.Replace(minimalSource, "00000000", "zz", 1), "sources.hr/x.auth.bearer.tokenSHA256[0]", "64 hex"},
		{"no seed", strings.Replace(minimalSource, "    signingSeed: env:SEED\n", "", 1), "sources.hr/x.signingSeed", "required"},
		{"literal seed", strings.Replace(minimalSource, "env:SEED", "SUAAAA", 1), "sources.hr/x.signingSeed", "file:PATH or env:NAME"},
		{"missing env", strings.Replace(minimalSource, "env:SEED", "env:NOPE", 1), "sources.hr/x.signingSeed", "NOPE is not set"},
		{"curve seed", strings.Replace(minimalSource, "env:SEED", "env:WH", 1), "sources.hr/x.signingSeed", "no nkeys seed"},
		{"short webhook secret", strings.Replace(minimalSource, `bearer: {tokenSHA256: ["0000000000000000000000000000000000000000000000000000000000000000"]}`,
			`standardWebhooks: {secrets: [whsec_ZGV2LXdlYmhvb2stc2VjcmV0]}`, 1), "sources.hr/x.auth.standardWebhooks.secrets[0]", "24 to 64"},
		{"http results url", minimalSource + "    results: {url: 'http://example.com/x', secrets: [env:WH]}\n", "sources.hr/x.results.url", "https"},
		{"route of unknown source", minimalSource + "routes:\n  r:\n    sources: [nope]\n    mapping: {type: '\"x\"', subject: '\"x\"', id: '\"x\"', time: '\"x\"'}\n", "routes.r.sources[0]", "not in sources"},
		{"mapping syntax error", minimalSource + "routes:\n  sn:\n    sources: [hr/x]\n    mapping: {type: 'body.', subject: '\"x\"', id: '\"x\"', time: '\"x\"'}\n", "routes.sn.mapping.type", `expression "body."`},
		{"mapping type error", minimalSource + "routes:\n  sn:\n    sources: [hr/x]\n    mapping: {type: '\"x\"', subject: '1 + 2', id: '\"x\"', time: '\"x\"'}\n", "routes.sn.mapping.subject", `"1 + 2" has type int; want string`},
		{"mapping data not a map", minimalSource + "routes:\n  sn:\n    sources: [hr/x]\n    mapping: {type: '\"x\"', subject: '\"x\"', id: '\"x\"', time: '\"x\"', data: '[1]'}\n", "routes.sn.mapping.data", "want map"},
		{"mapping missing time", minimalSource + "routes:\n  sn:\n    sources: [hr/x]\n    mapping: {type: '\"x\"', subject: '\"x\"', id: '\"x\"'}\n", "routes.sn.mapping.time", "required"},
		{"mapping undeclared variable", minimalSource + "routes:\n  sn:\n    sources: [hr/x]\n    mapping: {type: 'request.type', subject: '\"x\"', id: '\"x\"', time: '\"x\"'}\n", "routes.sn.mapping.type", "undeclared reference"},
		{"shared credential", minimalSource + "  hr/y:\n    auth:\n      bearer: {tokenSHA256: [\"0000000000000000000000000000000000000000000000000000000000000000\"]}\n    signingSeed: env:SEED\n", "sources.hr/y.auth", "also used by source hr/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml), LoadOptions{LookupEnv: seedEnv(t)})
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			if ce.Path != tc.path || !strings.Contains(ce.Message, tc.msg) {
				t.Fatalf("got path %q message %q\nwant path %q message containing %q", ce.Path, ce.Message, tc.path, tc.msg)
			}
		})
	}
}

func TestParseConfigResolvesReferences(t *testing.T) {
	dir := t.TempDir()
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	// The form `authflow keys new-signing` writes: comments, then the seed.
	if err := os.WriteFile(filepath.Join(dir, "hr.seed"), []byte("# signing key\n"+string(seed)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jira.secret"), []byte("a-jira-secret-of-enough-length\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `version: 1
publishTimeout: 2s
sources:
  hr/x:
    auth:
      hmac: {header: x-hub-signature, secrets: [file:jira.secret, env:JIRA2]}
    signingSeed: file:hr.seed
    rateLimit: {perSecond: 5}
    results:
      url: https://itsm.contoso.example/results?token=abc
      secrets: [env:WH]
      maxElapsed: 10m
`
	env := func(name string) (string, bool) {
		switch name {
		case "JIRA2":
			return "another-jira-secret-of-length", true
		case "WH":
			return whSecretB64, true
		}
		return "", false
	}
	c, err := ParseConfig([]byte(yaml), LoadOptions{Dir: dir, LookupEnv: env})
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sources["hr/x"]
	pub, _ := s.Signer.PublicKey()
	want, _ := kp.PublicKey()
	switch {
	case pub != want:
		t.Fatalf("signer %s, want %s", pub, want)
	case s.Auth.HMAC.Header != "X-Hub-Signature" || s.Auth.HMAC.Prefix != "sha256=" || len(s.Auth.HMAC.Secrets) != 2:
		t.Fatalf("hmac %+v", s.Auth.HMAC)
	case string(s.Auth.HMAC.Secrets[0]) != "a-jira-secret-of-enough-length":
		t.Fatalf("file secret %q", s.Auth.HMAC.Secrets[0])
	case s.RateLimit != 5 || s.Burst != 5:
		t.Fatalf("rate %v burst %d", s.RateLimit, s.Burst)
	case s.Results.MaxElapsed.Minutes() != 10 || s.Results.Timeout != DefaultResultsTimeout:
		t.Fatalf("results %+v", s.Results)
	case c.PublishTimeout.Seconds() != 2:
		t.Fatalf("publishTimeout %s", c.PublishTimeout)
	}
	// The error of a missing file names the setting.
	_, err = ParseConfig([]byte(strings.Replace(yaml, "file:hr.seed", "file:nope.seed", 1)), LoadOptions{Dir: dir, LookupEnv: env})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Path != "sources.hr/x.signingSeed" {
		t.Fatalf("err = %v", err)
	}
}

// The example configuration parses (with its secrets in the environment).
func TestExampleConfigParses(t *testing.T) {
	env := seedEnv(t)
	b, err := os.ReadFile("testdata/examples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseConfig(b, LoadOptions{LookupEnv: func(name string) (string, bool) {
		if strings.HasPrefix(name, "AUTHFLOW_INGRESS_SEED_") {
			return env("SEED")
		}
		if name == "AUTHFLOW_INGRESS_JIRA_SECRET" {
			return exampleJiraSecret, true
		}
		return "", false
	}})
	if err != nil {
		t.Fatal(err)
	}
}
