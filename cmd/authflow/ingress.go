package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authflow/authflow/ingress"
)

// ingressFlags is the configuration of `authflow ingress`.
type ingressFlags struct {
	nats          natsFlags
	listen        string
	config        string
	tlsCert       string
	tlsKey        string
	tlsClientCA   string
	metricsListen string
	logLevel      string
}

func (f *ingressFlags) validate() error {
	if err := f.nats.validate(); err != nil {
		return err
	}
	if err := checkListen("listen", f.listen); err != nil {
		return err
	}
	if err := checkListen("metrics-listen", f.metricsListen); err != nil {
		return err
	}
	switch {
	case f.config == "":
		return usagef("--config is required: the sources, their credentials and the hook mappings (see docs/ingress.md)")
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return usagef("--tls-cert and --tls-key must be given together")
	case f.tlsClientCA != "" && f.tlsCert == "":
		return usagef("--tls-client-ca needs --tls-cert and --tls-key: client certificates are checked only over TLS")
	}
	for _, file := range []struct{ flag, path string }{
		{"config", f.config}, {"tls-cert", f.tlsCert}, {"tls-key", f.tlsKey}, {"tls-client-ca", f.tlsClientCA},
	} {
		if file.path == "" {
			continue
		}
		if err := readable(file.path); err != nil {
			return usagef("--%s: %v", file.flag, err)
		}
	}
	if _, err := parseLevel(f.logLevel); err != nil {
		return err
	}
	return nil
}

// runIngress serves the HTTP ingress: events and hooks in, results
// webhooks out.
func runIngress(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f ingressFlags
	fs := newFlagSet("ingress", stderr)
	f.nats.register(fs)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8090", "`HOST:PORT` the HTTP(S) ingress listens on")
	fs.StringVar(&f.config, "config", "", "ingress configuration `FILE` (YAML): sources, credentials, signing seeds, hook mappings; required")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "server certificate `FILE` (PEM); with --tls-key serves HTTPS (TLS 1.2+)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "server key `FILE` (PEM) for --tls-cert")
	fs.StringVar(&f.tlsClientCA, "tls-client-ca", "", "CA `FILE` (PEM) that signs client certificates, for mtls sources")
	fs.StringVar(&f.metricsListen, "metrics-listen", "127.0.0.1:9091", "`HOST:PORT` of /metrics")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	level, _ := parseLevel(f.logLevel)
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := ingress.LoadConfig(f.config)
	if err != nil {
		return usagef("--config: %v", err)
	}
	if cfg.UsesMTLS() && f.tlsClientCA == "" {
		return usagef("--config has mtls sources: give --tls-client-ca (and --tls-cert, --tls-key)")
	}
	var tlsConf *tls.Config
	if f.tlsCert != "" {
		if tlsConf, err = ingress.LoadTLS(f.tlsCert, f.tlsKey, f.tlsClientCA); err != nil {
			return usagef("--tls-cert/--tls-key/--tls-client-ca: %v", err)
		}
	}

	// Listen before connecting anywhere: a taken address is a
	// configuration error.
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return usagef("--listen: %v", err)
	}
	defer ln.Close()
	metricsLn, err := net.Listen("tcp", f.metricsListen)
	if err != nil {
		return usagef("--metrics-listen: %v", err)
	}
	defer metricsLn.Close()

	nc, err := f.nats.connect(ctx, "authflow-ingress", log.With("component", "nats"))
	if err != nil {
		return err
	}
	defer nc.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := ingress.New(ingress.Options{Config: cfg, NATS: nc, Registerer: reg, Logger: log.With("component", "ingress")})
	if err != nil {
		return err
	}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	} else if host, _, _ := net.SplitHostPort(f.listen); !isLoopbackHost(host) {
		log.Warn("serving plain HTTP on a non-loopback address: credentials cross the network in clear unless a TLS proxy is in front",
			"listen", f.listen)
	}
	return serveIngress(ctx, srv, ln, metricsLn, reg, tlsConf, log, scheme, stdout)
}

// serveIngress runs the ingress until ctx ends, then shuts down: requests
// in flight (and their Prefer: wait) get time to finish.
func serveIngress(ctx context.Context, srv *ingress.Server, ln, metricsLn net.Listener, reg *prometheus.Registry,
	tlsConf *tls.Config, log *slog.Logger, scheme string, stdout io.Writer) error {
	hs := ingress.NewHTTPServer(srv.Handler(), tlsConf, log)
	serveErr := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			serveErr <- hs.ServeTLS(ln, "", "")
			return
		}
		serveErr <- hs.Serve(ln)
	}()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	stopMetrics := serveHTTP(metricsLn, mux, log)
	defer stopMetrics()

	resultsCtx, stopResults := context.WithCancel(ctx)
	resultsDone := make(chan struct{})
	go func() { _ = srv.RunResults(resultsCtx); close(resultsDone) }()

	url := scheme + "://" + ln.Addr().String()
	log.Info("authflow ingress listening", "url", url, "metrics", "http://"+metricsLn.Addr().String()+"/metrics")
	fmt.Fprintf(stdout, "authflow ingress: %s/v1/events and %s/v1/hooks/{route}\n", url, url)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ingress.MaxWait+5*time.Second)
	defer cancel()
	_ = hs.Shutdown(shutdownCtx)
	stopResults()
	<-resultsDone
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ingress: %w", err)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
