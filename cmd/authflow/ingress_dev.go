package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authflow/authflow/ingress"
)

// The development ingress's credentials, printed in the `authflow dev`
// banner. They are public on purpose: dev is insecure by design.
const (
	devIngressToken         = "dev-token"
	devIngressWebhookSource = "dev/webhook"
	// devIngressWebhookSecret is base64 of "dev-webhook-secret": 18 bytes,
	// under the 24 the Standard Webhooks specification asks for (and a
	// configuration file must have); acceptable only here.
	devIngressWebhookSecret = "whsec_ZGV2LXdlYmhvb2stc2VjcmV0"
)

// devIngress is a running development ingress.
type devIngress struct {
	URL    string
	Banner []string // lines for the `authflow dev` banner
	stop   func()
}

// Stop shuts the ingress down.
func (d *devIngress) Stop() { d.stop() }

// devIngressConfig accepts any source with "Authorization: Bearer
// dev-token" and Standard Webhooks signatures made with the dev secret for
// source dev/webhook. Each source signs with a fresh key (the dev policy
// checks a signature against the key it names).
func devIngressConfig() (*ingress.Config, error) {
	secret, err := ingress.ParseWebhookSecret(devIngressWebhookSecret)
	if err != nil {
		return nil, err
	}
	anyKey, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	whKey, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	return &ingress.Config{
		Sources: map[string]*ingress.Source{
			"*": {
				Name: "*", AnySource: true, Signer: anyKey,
				Auth: ingress.Auth{Bearer: &ingress.BearerAuth{TokenHashes: [][sha256.Size]byte{sha256.Sum256([]byte(devIngressToken))}}},
			},
			devIngressWebhookSource: {
				Name: devIngressWebhookSource, Signer: whKey,
				Auth: ingress.Auth{StandardWebhooks: &ingress.StandardWebhooksAuth{
					Secrets: [][]byte{secret}, Tolerance: ingress.DefaultTolerance,
				}},
			},
		},
		Routes: map[string]*ingress.Route{},
	}, nil
}

// startDevIngress serves the development ingress on ln (bound by the
// caller, so a busy --ingress-listen fails the start with the other ports)
// over plain HTTP, publishing on nc, until ctx ends or Stop is called. Its
// metrics go to reg (nil: none), dev's one /metrics.
func startDevIngress(ctx context.Context, ln net.Listener, nc *nats.Conn, reg prometheus.Registerer, log *slog.Logger) (*devIngress, error) {
	cfg, err := devIngressConfig()
	if err != nil {
		return nil, fmt.Errorf("dev ingress: %w", err)
	}
	srv, err := ingress.New(ingress.Options{Config: cfg, NATS: nc, Registerer: reg, Logger: log.With("component", "ingress")})
	if err != nil {
		return nil, fmt.Errorf("dev ingress: %w", err)
	}
	hs := ingress.NewHTTPServer(srv.Handler(), nil, log)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("dev ingress", "err", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
			<-done
		})
	}
	unregister := context.AfterFunc(ctx, stop)
	url := "http://" + ln.Addr().String()
	return &devIngress{URL: url, Banner: devIngressBanner(url), stop: func() { unregister(); stop() }}, nil
}

// devIngressBanner is what `authflow dev` prints about the ingress.
func devIngressBanner(url string) []string {
	return []string{
		"  HTTP ingress:         " + url + "/v1/events   " + url + "/v1/hooks/{route}",
		"    any source:         Authorization: Bearer " + devIngressToken,
		"    source " + devIngressWebhookSource + ":  Standard Webhooks, secret " + devIngressWebhookSecret,
		"    e.g.  curl -H 'Authorization: Bearer " + devIngressToken + "' -H 'Content-Type: application/cloudevents+json' \\",
		"            --data @event.json " + url + "/v1/events",
	}
}
