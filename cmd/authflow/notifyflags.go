package main

import (
	"context"
	"flag"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/notify"
)

// notifyFlags configure the notification deliverer (package notify) that
// `authflow worker` runs beside the worker when --notify-sender is set.
// Without it the worker still publishes every notification to
// AUTHFLOW_NOTIFICATIONS; another process (or replica) may deliver them.
type notifyFlags struct {
	sender       string
	templates    string
	organization string
	dispute      string
	plainText    bool
}

func (f *notifyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.sender, "notify-sender", "", "object `ID` of the mailbox notifications are sent from (Mail.Send, limited by an Exchange application access policy; docs/notifications.md); empty: this process delivers none")
	fs.StringVar(&f.templates, "notify-templates", "", "`DIR` of templates overriding the built-in ones (docs/notifications.md)")
	fs.StringVar(&f.organization, "notify-organization", "IT", "`NAME` the notifications are signed with")
	fs.StringVar(&f.dispute, "notify-dispute", "", "the dispute line of every notification (default: the built-in one)")
	fs.BoolVar(&f.plainText, "notify-plain-text", false, "send notifications as plain text instead of HTML")
}

func (f *notifyFlags) validate() error {
	switch {
	case f.sender != "" && (len(f.sender) > 256 || strings.ContainsFunc(f.sender, isControlOrSpace)):
		return usagef("--notify-sender must be a mailbox object id or UPN without spaces, got %q", f.sender)
	case f.sender == "" && (f.templates != "" || f.dispute != "" || f.plainText):
		return usagef("--notify-templates, --notify-dispute and --notify-plain-text need --notify-sender")
	case strings.ContainsFunc(f.organization, func(r rune) bool { return r < ' ' }) || len(f.organization) > 100:
		return usagef("--notify-organization must be at most 100 printable characters")
	}
	if f.templates != "" {
		if _, err := notify.LoadTemplates(f.templates); err != nil {
			return usagef("--notify-templates: %v", err)
		}
	}
	return nil
}

// start runs the deliverer until ctx ends; it returns a wait function.
func (f *notifyFlags) start(ctx context.Context, nc *nats.Conn, g *graphclient.Client, replicas int, reg prometheus.Registerer, log *slog.Logger) (wait func(), err error) {
	if f.sender == "" {
		return func() {}, nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	tpl := notify.DefaultTemplates()
	if f.templates != "" {
		if tpl, err = notify.LoadTemplates(f.templates); err != nil {
			return nil, usagef("--notify-templates: %v", err)
		}
	}
	d, err := notify.NewDeliverer(ctx, notify.Config{
		JetStream: js, Mailer: g, Sender: f.sender, Templates: tpl, PlainText: f.plainText,
		Organization: f.organization, Dispute: f.dispute, Replicas: replicas,
		IsTransient: graphclient.IsTransient, RetryAfter: graphclient.RetryAfter,
		Metrics: notify.NewMetrics(reg), Logger: log,
	})
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("notification deliverer stopped", "err", err)
		}
	}()
	return func() { <-done }, nil
}
