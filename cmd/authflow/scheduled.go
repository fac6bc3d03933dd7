package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// runScheduled is `authflow scheduled list`: the future-dated events
// waiting in JetStream's scheduler (docs/events.md, "Future-dated events").
func runScheduled(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: authflow scheduled list [--nats-url URL] [--json]"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stdout, usage)
		fmt.Fprintln(stdout, "  list  the future-dated events waiting for their effectiveAt (authflow scheduled list --help: its flags)")
		return nil
	}
	if len(args) == 0 || args[0] != "list" {
		return usagef("%s", usage)
	}
	var nf natsFlags
	fs := newFlagSet("scheduled list", stderr)
	nf.register(fs)
	jsonOut := fs.Bool("json", false, "print each scheduled event as one line of JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := nf.validate(); err != nil {
		return err
	}
	nc, err := nf.connect(ctx, "authflow-scheduled", nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	type entry struct {
		EventID     string `json:"eventId"`
		Source      string `json:"source"`
		Type        string `json:"type"`
		Subject     string `json:"subject"`
		EffectiveAt string `json:"effectiveAt"`
		Fires       string `json:"fires"` // the schedule's next firing (effectiveAt, or a hop before it)
		Key         string `json:"key"`   // the event key (authflow.schedules.<key>)
	}
	var list []entry
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{worker.SchedulesSubjectPrefix + "*"}}
	err = readStream(ctx, js, worker.EventsStream, cfg, false, func(m jetstream.Msg) {
		e := entry{Key: strings.TrimPrefix(m.Subject(), worker.SchedulesSubjectPrefix),
			Fires: strings.TrimPrefix(m.Headers().Get("Nats-Schedule"), "@at ")}
		doc := m.Data()
		if events.IsBinary(m.Headers()) {
			if d, err := events.StructuredFromBinary(m.Headers(), m.Data()); err == nil {
				doc = d
			}
		}
		var v struct {
			ID, Source, Type, Subject string
			Data                      struct {
				EffectiveAt string `json:"effectiveAt"`
			}
		}
		if err := json.Unmarshal(doc, &v); err != nil {
			fmt.Fprintf(stderr, "undecodable schedule %s: %v\n", m.Subject(), err)
			return
		}
		e.EventID, e.Source, e.Type, e.Subject, e.EffectiveAt = v.ID, v.Source, v.Type, v.Subject, v.Data.EffectiveAt
		list = append(list, e)
	})
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		for _, e := range list {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no scheduled events")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EFFECTIVE AT\tIN\tTYPE\tSUBJECT\tSOURCE\tID")
	for _, e := range list {
		in := "?"
		if t, err := time.Parse(time.RFC3339, e.EffectiveAt); err == nil {
			in = time.Until(t).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.EffectiveAt, in, e.Type, e.Subject, e.Source, e.EventID)
	}
	return tw.Flush()
}
