package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/authflow/authflow/graphclient"
)

// graphFlags say where Graph is and how to authenticate. Without
// --graph-token the credential comes from azidentity's environment
// variables (graphclient.NewCredentialFromEnv).
type graphFlags struct {
	url   string
	token string
	// maxConcurrency, when set, is the ceiling of the client's adaptive
	// limit on Graph requests in flight (graphclient.ThrottleConfig.MaxLimit).
	maxConcurrency int
}

func (f *graphFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "graph-url", graphclient.DefaultBaseURL, "Microsoft Graph base `URL` including the version")
	fs.StringVar(&f.token, "graph-token", "", "static bearer `TOKEN` (the Graph emulator only); without it, credentials come from AZURE_* environment variables")
}

func (f *graphFlags) validate() error {
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return usagef("invalid --graph-url %q: an http(s) URL such as %s", f.url, graphclient.DefaultBaseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return usagef("invalid --graph-url: no user info, query or fragment")
	}
	return nil
}

// client builds the Graph client. observe (may be nil) receives every HTTP
// attempt for metrics; tp (may be nil) records a span for each.
func (f *graphFlags) client(observe func(op string, status int, d time.Duration), log *slog.Logger, tp trace.TracerProvider) (*graphclient.Client, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	cfg := graphclient.Config{BaseURL: f.url, Token: f.token, Observe: observe, Logger: log, TracerProvider: tp}
	if f.token == "" {
		cred, err := graphclient.NewCredentialFromEnv()
		if err != nil {
			return nil, usagef("Graph credentials (no --graph-token, so from AZURE_* variables): %v", err)
		}
		cfg.Credential = cred
	}
	if f.maxConcurrency > 0 {
		// Start at the client's usual limit and grow towards the ceiling,
		// rather than open with a burst Graph would answer with 429s.
		maxL := min(f.maxConcurrency, graphclient.MaxThrottleLimit)
		th, err := graphclient.NewThrottle(graphclient.ThrottleConfig{MaxLimit: maxL,
			InitialLimit: min(maxL, graphclient.DefaultThrottleMaxLimit)})
		if err != nil {
			return nil, err
		}
		cfg.Throttle = th
	}
	c, err := graphclient.New(cfg)
	if err != nil {
		return nil, usagef("--graph-url/--graph-token: %v", err)
	}
	return c, nil
}

// describe says where Graph is and how the client authenticates, for a
// start-up line; never the token.
func (f *graphFlags) describe() string {
	if f.token != "" {
		return fmt.Sprintf("%s (static token)", f.url)
	}
	return fmt.Sprintf("%s (azidentity credential from the environment)", f.url)
}
