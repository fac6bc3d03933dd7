package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/authflow/authflow/events"
)

// Defaults of Config.
const (
	DefaultMaxAttempts      = 10
	DefaultInitialBackoff   = 2 * time.Second
	DefaultMaxBackoff       = 5 * time.Minute
	DefaultSentTTL          = 7 * 24 * time.Hour
	DefaultRateLimitedQuiet = time.Hour
	DefaultConcurrency      = 4
	DefaultAckWait          = 2 * time.Minute
	DefaultDispute          = "If you did not ask for this change, contact your IT service desk at once and say so: someone may be trying to take over your account."
)

// Config configures a Deliverer. Zero values take the defaults.
type Config struct {
	// JetStream is the connection's JetStream handle. Required.
	JetStream jetstream.JetStream
	// Mailer reads addresses and sends mail (a *graphclient.Client).
	// Required.
	Mailer Mailer
	// Sender is the object id of the mailbox notifications are sent from
	// (application permission Mail.Send, limited to that mailbox by an
	// Exchange application access policy). Required.
	Sender string
	// Templates render the emails. Defaults to DefaultTemplates().
	Templates *Templates
	// PlainText sends the text template's body instead of the html one.
	PlainText bool
	// Organization names the sender in subjects ("Contoso IT"). Defaults
	// to "IT".
	Organization string
	// Dispute is the line that tells the user what to do if they did not
	// ask for the change. Defaults to DefaultDispute.
	Dispute string
	// MaxAttempts is how many deliveries of a notification may fail
	// transiently before it is dead-lettered (retries_exhausted).
	// Defaults to 10.
	MaxAttempts int
	// InitialBackoff and MaxBackoff bound the wait before a retry: it
	// doubles from InitialBackoff up to MaxBackoff, with Graph's
	// Retry-After as a floor. Default 2 s and 5 min.
	InitialBackoff, MaxBackoff time.Duration
	// IsTransient classifies a Mailer error: true retries it, false
	// dead-letters the notification at once (permanent). Defaults to
	// treating every error as transient (graphclient.IsTransient is the
	// one to give).
	IsTransient func(error) bool
	// RetryAfter reads the server's Retry-After from a Mailer error
	// (graphclient.RetryAfter). Optional.
	RetryAfter func(error) (time.Duration, bool)
	// SentTTL is how long a delivered notification is remembered, so that
	// a redelivery does not send it again. Defaults to 7 days.
	SentTTL time.Duration
	// RateLimitedQuiet: at most one rate-limit notice per user and event
	// type in this window, so that a flood of refused requests does not
	// flood the user's inbox. Defaults to 1 h.
	RateLimitedQuiet time.Duration
	// Concurrency is how many notifications are delivered at once.
	// Defaults to 4.
	Concurrency int
	// AckWait is the consumer's ack deadline. Defaults to 2 min.
	AckWait time.Duration
	// Replicas of the sent bucket (and the stream, if this creates it).
	// Defaults to 1.
	Replicas int
	// Metrics, if set, counts deliveries (NewMetrics).
	Metrics *Metrics
	// Logger defaults to discarding. The Deliverer logs object ids and
	// notification ids, not addresses (a Graph error it logs may quote one).
	Logger *slog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

func (c *Config) withDefaults() {
	if c.Templates == nil {
		c.Templates = DefaultTemplates()
	}
	if c.Organization == "" {
		c.Organization = "IT"
	}
	if c.Dispute == "" {
		c.Dispute = DefaultDispute
	}
	c.MaxAttempts = cmpOrInt(c.MaxAttempts, DefaultMaxAttempts)
	c.InitialBackoff = cmpOr(c.InitialBackoff, DefaultInitialBackoff)
	c.MaxBackoff = cmpOr(c.MaxBackoff, DefaultMaxBackoff)
	c.SentTTL = cmpOr(c.SentTTL, DefaultSentTTL)
	c.RateLimitedQuiet = cmpOr(c.RateLimitedQuiet, DefaultRateLimitedQuiet)
	c.Concurrency = cmpOrInt(c.Concurrency, DefaultConcurrency)
	c.AckWait = cmpOr(c.AckWait, DefaultAckWait)
	c.Replicas = max(c.Replicas, 1)
	if c.IsTransient == nil {
		c.IsTransient = func(error) bool { return true }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func cmpOrInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func (c *Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("notify config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.JetStream == nil {
		bad("JetStream", "required")
	}
	if c.Mailer == nil {
		bad("Mailer", "required")
	}
	if !isGUID(c.Sender) {
		bad("Sender", "must be the object id (GUID) of the sending mailbox, got %q", c.Sender)
	}
	if c.MaxAttempts > 1000 {
		bad("MaxAttempts", "must be 1..1000, got %d", c.MaxAttempts)
	}
	if c.InitialBackoff > c.MaxBackoff {
		bad("InitialBackoff", "must not exceed MaxBackoff (%s), got %s", c.MaxBackoff, c.InitialBackoff)
	}
	if c.Concurrency > 256 {
		bad("Concurrency", "must be 1..256, got %d", c.Concurrency)
	}
	if c.AckWait < time.Second {
		bad("AckWait", "must be at least 1s, got %s", c.AckWait)
	}
	if strings.ContainsAny(c.Organization+c.Dispute, "\r\n") {
		bad("Organization/Dispute", "must be one line")
	}
	return errors.Join(errs...)
}

// Deliverer delivers notifications as email (see the package
// documentation). Several replicas may run at once: they share the durable
// consumer and the sent bucket.
type Deliverer struct {
	cfg  Config
	log  *slog.Logger
	cons jetstream.Consumer
	sent jetstream.KeyValue
	// keyTTL is true when the sent bucket takes per-key TTLs.
	keyTTL bool
	wg     sync.WaitGroup
}

// NewDeliverer checks cfg, creates the notifications stream (if missing),
// the durable consumer and the sent bucket, and returns a Deliverer ready
// to Run.
func NewDeliverer(ctx context.Context, cfg Config) (*Deliverer, error) {
	cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	js := cfg.JetStream
	if _, err := js.Stream(ctx, Stream); errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := EnsureStream(ctx, js, StreamConfig{Replicas: cfg.Replicas}); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("notify: stream %s: %w", Stream, err)
	}
	cc := jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "authflow notification delivery (email through Graph sendMail)",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: 4 * cfg.Concurrency,
		// Unlimited: the Deliverer counts attempts itself and
		// dead-letters, so no notification is dropped silently.
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, Stream, cc)
	if err != nil {
		return nil, fmt.Errorf("notify: ensure consumer %s: %w", ConsumerName, err)
	}
	kvc := jetstream.KeyValueConfig{
		Bucket:         SentBucket,
		Description:    "authflow: notifications delivered, and rate-limit notices sent per user",
		History:        1,
		TTL:            max(cfg.SentTTL, cfg.RateLimitedQuiet),
		Storage:        jetstream.FileStorage,
		Replicas:       cfg.Replicas,
		LimitMarkerTTL: time.Minute,
	}
	sent, err := js.CreateOrUpdateKeyValue(ctx, kvc)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		kvc.LimitMarkerTTL = 0
		sent, err = js.CreateOrUpdateKeyValue(ctx, kvc)
	}
	if err != nil {
		return nil, fmt.Errorf("notify: ensure bucket %s: %w", SentBucket, err)
	}
	d := &Deliverer{cfg: cfg, log: cfg.Logger, cons: cons, sent: sent}
	if st, err := sent.Status(ctx); err == nil {
		if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
			d.keyTTL = bs.StreamInfo().Config.AllowMsgTTL
		}
	}
	return d, nil
}

// Run delivers notifications until ctx ends; it returns nil then, after
// the deliveries in flight have finished or been handed back.
func (d *Deliverer) Run(ctx context.Context) error {
	sem := make(chan struct{}, d.cfg.Concurrency)
	cc, err := d.cons.Consume(func(m jetstream.Msg) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			_ = m.Nak()
			return
		}
		d.wg.Add(1)
		go func() {
			defer func() { <-sem; d.wg.Done() }()
			d.handle(ctx, m)
		}()
	}, jetstream.PullMaxMessages(2*d.cfg.Concurrency))
	if err != nil {
		return fmt.Errorf("notify: consume: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	d.wg.Wait()
	return nil
}

// handle delivers one notification and settles its message: ack when
// sent (or already sent, or quiet), a delayed nak to retry, or a dead
// letter.
func (d *Deliverer) handle(ctx context.Context, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		d.log.Error("notification without metadata", "err", err)
		_ = m.Nak()
		return
	}
	n, err := events.DecodeNotification(m.Data())
	if err != nil {
		d.deadLetter(ctx, m, md, ReasonInvalid, err.Error())
		return
	}
	log := d.log.With("notification", n.ID, "type", n.Data.Event.Type, "user", n.Data.User.ObjectID, "attempt", md.NumDelivered)
	sentKey := "sent." + digest(n.ID)
	if _, err := d.sent.Get(ctx, sentKey); err == nil {
		d.metric(func(mt *Metrics) { mt.skipped.WithLabelValues("duplicate").Inc() })
		d.ack(m, log)
		return
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		d.retry(ctx, m, md, log, fmt.Errorf("read sent bucket: %w", err))
		return
	}
	if n.Data.Reason == events.ReasonRateLimited {
		quiet, err := d.claimQuiet(ctx, n)
		if err != nil {
			d.retry(ctx, m, md, log, fmt.Errorf("claim the quiet window: %w", err))
			return
		}
		if quiet {
			log.Info("rate-limit notice not sent: the user got one for this type less than the quiet window ago")
			d.metric(func(mt *Metrics) { mt.skipped.WithLabelValues("quiet").Inc() })
			d.ack(m, log)
			return
		}
	}
	msg, err := d.compose(ctx, n)
	switch {
	case errors.Is(err, ErrNoRecipient):
		d.deadLetter(ctx, m, md, ReasonNoRecipient, err.Error())
		return
	case err != nil:
		d.fail(ctx, m, md, log, err)
		return
	}
	if err := d.cfg.Mailer.SendMail(ctx, d.cfg.Sender, msg); err != nil {
		d.fail(ctx, m, md, log, fmt.Errorf("send mail: %w", err))
		return
	}
	// Sent: remember it, so that a redelivery (an ack lost, a crash
	// before the ack) does not send it twice. A crash before this line
	// sends it again: email is at least once.
	var ttl []jetstream.KVCreateOpt
	if d.keyTTL {
		ttl = append(ttl, jetstream.KeyTTL(d.cfg.SentTTL))
	}
	if _, err := d.sent.Create(ctx, sentKey, []byte(n.ID), ttl...); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		log.Warn("notification sent but not recorded; a redelivery may send it again", "err", err)
	}
	d.metric(func(mt *Metrics) { mt.sent.WithLabelValues(n.Data.Reason).Inc() })
	log.Info("notification sent")
	d.ack(m, log)
}

// claimQuiet takes the user's quiet window for rate-limit notices of the
// notification's event type, or reports that another notice holds it.
// The claim is made before sending, with compare-and-set, so that
// concurrent refusals send one notice; it names the notification, so
// that a redelivery of the same one (after a failed send) goes ahead.
func (d *Deliverer) claimQuiet(ctx context.Context, n *events.Notification) (quiet bool, err error) {
	key := "quiet." + digest(n.Data.User.ObjectID+"\x00"+n.Data.Event.Type)
	for range 100 {
		e, err := d.sent.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = d.sent.Create(ctx, key, []byte(n.ID))
		case err != nil:
			return false, err
		case string(e.Value()) == n.ID:
			return false, nil
		case d.cfg.Now().Sub(e.Created()) < d.cfg.RateLimitedQuiet:
			return true, nil
		default:
			_, err = d.sent.Update(ctx, key, []byte(n.ID), e.Revision())
		}
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return false, err
		}
	}
	return false, errors.New("the quiet window's entry keeps changing")
}

// compose finds the recipients and renders the email.
func (d *Deliverer) compose(ctx context.Context, n *events.Notification) (*mail.Message, error) {
	userID := n.Data.User.ObjectID
	addrs, err := d.cfg.Mailer.MailAddresses(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("read the user's addresses: %w", err)
	}
	var to []*mail.Address
	for _, a := range addrs {
		// Never to an address the same event set: whoever asked for the
		// change may own it.
		if a != nil && !n.Excluded(a.Address) && !hasAddr(to, a.Address) {
			to = append(to, a)
		}
	}
	var manager *mail.Address
	if n.Data.Notify == events.NotifyUserAndManager {
		mgr, err := d.cfg.Mailer.ManagerAddress(ctx, userID)
		if err != nil {
			return nil, fmt.Errorf("read the manager: %w", err)
		}
		if mgr != nil && !n.Excluded(mgr.Address) && !hasAddr(to, mgr.Address) {
			manager = mgr
		}
	}
	if len(to) == 0 && manager == nil {
		return nil, fmt.Errorf("%w: the user has no mail or otherMails address that this change did not set", ErrNoRecipient)
	}
	data := d.data(n, to, manager)
	subject, body, err := d.cfg.Templates.render(templateKey(n), data, !d.cfg.PlainText)
	if err != nil {
		return nil, err
	}
	h := mail.Header{
		"Subject":      {mime.QEncoding.Encode("utf-8", subject)},
		"Content-Type": {"text/plain; charset=utf-8"},
	}
	if !d.cfg.PlainText {
		h["Content-Type"] = []string{"text/html; charset=utf-8"}
	}
	if len(to) > 0 {
		h["To"] = []string{joinAddrs(to)}
		if manager != nil {
			h["Cc"] = []string{manager.String()}
		}
	} else {
		// Nobody but the manager can be told.
		h["To"] = []string{manager.String()}
	}
	return &mail.Message{Header: h, Body: strings.NewReader(body)}, nil
}

func (d *Deliverer) data(n *events.Notification, to []*mail.Address, manager *mail.Address) *Data {
	nd := n.Data
	at := nd.OccurredAt.UTC()
	out := &Data{
		Organization: d.cfg.Organization,
		Account:      nd.User.UPN,
		Headline:     headline(nd.Event.Type),
		Type:         nd.Event.Type,
		Request:      request(nd.Event.Type),
		Incomplete:   nd.Status != events.StatusSucceeded && nd.Reason == events.ReasonChanged,
		When:         at.Format(time.RFC1123),
		Time:         at,
		Dispute:      d.cfg.Dispute,
		Reference:    n.ID,
	}
	if nd.Reason == events.ReasonRateLimited {
		out.Headline = "A change to your account was refused"
	}
	if out.Account == "" {
		out.Account = nd.User.ObjectID
	}
	if len(to) > 0 {
		out.Name = to[0].Name
	}
	if manager != nil {
		out.Manager = manager.Name
		if out.Manager == "" {
			out.Manager = manager.Address
		}
	}
	for _, c := range nd.Changes {
		out.Changes = append(out.Changes, changeLine(c))
	}
	if p := nd.Provenance; p != nil {
		out.Source, out.Ticket, out.VerifiedBy, out.Method = p.Source, p.TicketID, p.VerifiedBy, p.Method
	} else {
		out.Source = nd.Event.Source
	}
	return out
}

// fail retries a transient error or dead-letters a permanent one.
func (d *Deliverer) fail(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata, log *slog.Logger, err error) {
	if ctx.Err() != nil {
		// Shutting down: hand it back untouched for the next run.
		_ = m.Nak()
		return
	}
	if !d.cfg.IsTransient(err) {
		d.deadLetter(ctx, m, md, ReasonPermanent, err.Error())
		return
	}
	d.retry(ctx, m, md, log, err)
}

func (d *Deliverer) retry(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata, log *slog.Logger, err error) {
	if int(md.NumDelivered) >= d.cfg.MaxAttempts {
		d.deadLetter(ctx, m, md, ReasonRetriesExhausted, err.Error())
		return
	}
	wait := d.backoff(int(md.NumDelivered))
	if d.cfg.RetryAfter != nil {
		if ra, ok := d.cfg.RetryAfter(err); ok && ra > wait {
			wait = min(ra, d.cfg.MaxBackoff)
		}
	}
	log.Warn("notification not delivered; retrying later", "err", err, "wait", wait)
	d.metric(func(mt *Metrics) { mt.retries.Inc() })
	if nerr := m.NakWithDelay(wait); nerr != nil {
		log.Warn("nak failed; the server redelivers after the ack wait", "err", nerr)
	}
}

// backoff is the wait before attempt n+1: InitialBackoff doubled n-1
// times, at most MaxBackoff.
func (d *Deliverer) backoff(n int) time.Duration {
	w := d.cfg.InitialBackoff
	for i := 1; i < n && w < d.cfg.MaxBackoff; i++ {
		w *= 2
	}
	return min(w, d.cfg.MaxBackoff)
}

// deadLetter copies the notification to the DLQ with the reason, then
// terminates it; if the copy fails, the message is handed back to try
// again later, so nothing is lost.
func (d *Deliverer) deadLetter(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata, reason, message string) {
	key := strings.TrimPrefix(m.Subject(), SubjectPrefix)
	dl := nats.NewMsg(DLQSubjectPrefix + key)
	dl.Data = m.Data()
	for k, vs := range m.Headers() {
		if k != nats.MsgIdHdr {
			dl.Header[k] = vs
		}
	}
	if len(message) > 1024 {
		message = message[:1024]
	}
	dl.Header.Set(HeaderDLQReason, reason)
	dl.Header.Set(HeaderDLQMessage, message)
	dl.Header.Set(HeaderDLQAttempts, strconv.FormatUint(md.NumDelivered, 10))
	dl.Header.Set(HeaderDLQSubject, m.Subject())
	dl.Header.Set(HeaderDLQSequence, strconv.FormatUint(md.Sequence.Stream, 10))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := d.cfg.JetStream.PublishMsg(pctx, dl, jetstream.WithMsgID("dlq:notification:"+strconv.FormatUint(md.Sequence.Stream, 10)),
		jetstream.WithExpectStream(DLQStream))
	log := d.log.With("sequence", md.Sequence.Stream, "reason", reason)
	if err != nil {
		log.Error("dead letter failed; the notification is retried later", "err", err)
		_ = m.NakWithDelay(d.cfg.MaxBackoff)
		return
	}
	log.Error("notification dead-lettered", "message", message)
	d.metric(func(mt *Metrics) { mt.failed.WithLabelValues(reason).Inc() })
	if err := m.TermWithReason(reason); err != nil {
		log.Warn("term failed; a redelivery dead-letters it again (deduplicated)", "err", err)
	}
}

func (d *Deliverer) ack(m jetstream.Msg, log *slog.Logger) {
	if err := m.Ack(); err != nil {
		log.Warn("ack failed; a redelivery finds the notification sent", "err", err)
	}
}

func (d *Deliverer) metric(f func(*Metrics)) {
	if d.cfg.Metrics != nil {
		f(d.cfg.Metrics)
	}
}

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}

func hasAddr(list []*mail.Address, addr string) bool {
	for _, a := range list {
		if strings.EqualFold(a.Address, addr) {
			return true
		}
	}
	return false
}

func joinAddrs(list []*mail.Address) string {
	s := make([]string, len(list))
	for i, a := range list {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Metrics are the Deliverer's Prometheus metrics.
type Metrics struct {
	sent    *prometheus.CounterVec // reason: changed, rate_limited
	failed  *prometheus.CounterVec // reason (dead-lettered)
	skipped *prometheus.CounterVec // reason: duplicate, quiet
	retries prometheus.Counter
}

// NewMetrics registers the notification metrics on reg, every series at
// zero: authflow_notifications_sent_total{reason},
// authflow_notifications_failed_total{reason} (dead-lettered),
// authflow_notifications_skipped_total{reason} and
// authflow_notification_retries_total.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		sent: f.NewCounterVec(prometheus.CounterOpts{Name: "authflow_notifications_sent_total",
			Help: "Notification emails Graph accepted, by why the user was told (changed, rate_limited)."}, []string{"reason"}),
		failed: f.NewCounterVec(prometheus.CounterOpts{Name: "authflow_notifications_failed_total",
			Help: "Notifications dead-lettered because they could not be delivered, by reason."}, []string{"reason"}),
		skipped: f.NewCounterVec(prometheus.CounterOpts{Name: "authflow_notifications_skipped_total",
			Help: "Notifications not sent on purpose: already delivered (duplicate) or a rate-limit notice within the quiet window (quiet)."}, []string{"reason"}),
		retries: f.NewCounter(prometheus.CounterOpts{Name: "authflow_notification_retries_total",
			Help: "Notification deliveries that failed transiently and were retried later."}),
	}
	for _, r := range []string{events.ReasonChanged, events.ReasonRateLimited} {
		m.sent.WithLabelValues(r)
	}
	for _, r := range []string{ReasonInvalid, ReasonNoRecipient, ReasonPermanent, ReasonRetriesExhausted} {
		m.failed.WithLabelValues(r)
	}
	for _, r := range []string{"duplicate", "quiet"} {
		m.skipped.WithLabelValues(r)
	}
	return m
}
