package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
)

// The interactive lane. The partition consumers apply events in stream
// order, so an event from a person waiting (a helpdesk call) would queue
// behind every bulk event hashed to its partition. Sources the policy marks
// `priority: interactive` therefore also take a second way in:
//
//   - a scanner in each replica reads the events stream with an ordered
//     consumer (no acks, fast) from the oldest event no partition has acked
//     yet, and for each event of an interactive source publishes a pointer
//     (its stream sequence) to authflow.priority.<key> in the work-queue
//     stream AUTHFLOW_PRIORITY, deduplicated by Nats-Msg-Id prio:<seq>;
//   - the durable consumer authflow-interactive hands the pointers out to
//     every replica, many at a time; for each, the worker reads the event by
//     sequence and first applies, in stream order, every earlier event of
//     the same key that the partition has not acked yet (priority
//     inheritance: direct gets by subject from the partition's ack floor),
//     then the event itself.
//
// Every event is still handled by the one settle path, claimed through its
// ledger lease: when the partition consumer reaches an event the lane
// already applied, the ledger answers with the stored result; when both
// reach one at once, the lease lets one run and the other waits. So the
// order of one key's events stays the stream order, and each takes effect
// once.
const (
	PriorityStream        = "AUTHFLOW_PRIORITY"
	PrioritySubjectPrefix = "authflow.priority."
	interactiveConsumer   = "authflow-interactive"
	// FairSubjectPrefix is the fair lane's: bulk events of a source whose
	// share of the backlog is small (fair.go).
	FairSubjectPrefix = PrioritySubjectPrefix + "fair."
	fairConsumer      = "authflow-fair"
	// HeaderEventSequence is the stream sequence (in AUTHFLOW_EVENTS) a
	// pointer names.
	HeaderEventSequence = "Authflow-Event-Sequence"
)

// interactiveSlots is how many interactive pointers one replica works on at
// once. Each event they apply takes a Concurrency slot ahead of bulk work
// (slots.go), so the lane can use the whole Concurrency when it needs it —
// an interactive event for a user with k queued bulk events applies k+1.
func (w *Worker) interactiveSlots() int { return max(16, w.cfg.Concurrency) }

// fairSlots is how many fair-lane pointers one replica works on at once:
// the share of Concurrency a minority bulk source gets, ahead of the
// partitions, while another source's backlog drains.
func (w *Worker) fairSlots() int { return max(2, w.cfg.Concurrency/8) }

// runLanes starts the scanner and the lanes' consumers; they stop when ctx
// ends, after the events in hand are done (work).
func (w *Worker) runLanes(ctx, work context.Context, wg *sync.WaitGroup) error {
	for _, l := range []struct {
		name         string
		slots, class int
	}{{interactiveConsumer, w.interactiveSlots(), classInteractive}, {fairConsumer, w.fairSlots(), classFair}} {
		if err := w.runLane(ctx, work, wg, l.name, l.slots, l.class); err != nil {
			return err
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.scan(ctx)
	}()
	return nil
}

// runLane hands the pointers of one lane's consumer to up to slots
// goroutines.
func (w *Worker) runLane(ctx, work context.Context, wg *sync.WaitGroup, name string, n, class int) error {
	cons, err := w.js.Consumer(ctx, PriorityStream, name)
	if err != nil {
		return fmt.Errorf("worker lane consumer %s: %w", name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(n), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return fmt.Errorf("worker lane consumer %s: %w", name, err)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		it.Drain()
	}()
	slots := make(chan struct{}, n)
	go func() {
		defer wg.Done()
		var running sync.WaitGroup
		defer running.Wait()
		for {
			msg, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
					return
				}
				w.log.Warn("lane pull failed (NATS)", "lane", name, "err", err)
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
					return
				}
				continue
			}
			stop := w.keepAlive(msg)
			slots <- struct{}{}
			running.Add(1)
			go func() {
				defer running.Done()
				defer func() { <-slots }()
				defer stop()
				w.pointer(work, msg, class)
			}()
		}
	}()
	return nil
}

// scan publishes a pointer for every event of an interactive source, and
// for bulk events of a source with a small share of the backlog (fair
// lane), from the oldest event the partitions have not acked on, and
// follows the stream. It restarts after errors from where it stopped.
func (w *Worker) scan(ctx context.Context) {
	// Two readers: one follows the stream from its end, so a new
	// interactive event is seen at once however long the backlog, and one
	// catches up on the backlog (from the partitions' lowest ack floor to
	// where the first one began), then stops.
	floor := w.ackFloor(ctx)
	last := floor
	if s, err := w.eventsStream(ctx); err == nil {
		cctx, cancel := context.WithTimeout(ctx, w.cfg.NATSTimeout)
		if info, err := s.Info(cctx); err == nil {
			last = max(floor, info.State.LastSeq)
		}
		cancel()
	}
	bl := &lockedBacklog{b: newBacklog()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if last > floor {
			w.scanRange(ctx, floor+1, last, bl)
		}
	}()
	w.scanRange(ctx, last+1, 0, bl)
	wg.Wait()
}

// scanRange reads the events stream from seq from up to seq to (0: follow
// it for ever), publishing the pointers of the lanes. It restarts after
// errors from where it stopped.
func (w *Worker) scanRange(ctx context.Context, from, to uint64, bl *lockedBacklog) {
	next := from
	for ctx.Err() == nil && (to == 0 || next <= to) {
		cons, err := w.js.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: next,
		})
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("scan: ordered consumer (NATS)", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		it, err := cons.Messages()
		if err != nil {
			w.log.Warn("scan (NATS)", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		stopIt := context.AfterFunc(ctx, it.Stop)
		for to == 0 || next <= to {
			msg, err := it.Next()
			if err != nil {
				break
			}
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			seq := md.Sequence.Stream
			next = seq + 1
			if to != 0 && seq > to {
				break
			}
			if !strings.HasPrefix(msg.Subject(), EventsSubjectPrefix) {
				continue // a schedule (schedule.go), not an event
			}
			w.scanned(ctx, msg, seq, bl)
		}
		stopIt()
		it.Stop()
	}
}

// scanned publishes the lane pointer one event needs, if any.
func (w *Worker) scanned(ctx context.Context, msg jetstream.Msg, seq uint64, bl *lockedBacklog) {
	src, _, _ := peekIdentity(msg.Headers(), msg.Data())
	switch {
	case src == "":
	case w.cfg.Policy.Priority(src) == events.PriorityInteractive:
		if err := w.point(ctx, PrioritySubjectPrefix, "prio:", msg.Subject(), seq); err != nil {
			w.log.Warn("scan: interactive pointer not published; the partition will run the event", "err", err)
		}
	default:
		p, _ := partitionOfStored(msg.Subject())
		if bl.addAndCheck(p, seq, src, func() {
			bl.b.trim(func(p int) uint64 { f, _ := w.floors.get(ctx, w, p); return f })
		}) {
			if err := w.point(ctx, FairSubjectPrefix, "fair:", msg.Subject(), seq); err != nil {
				w.log.Warn("scan: fair pointer not published; the partition will run the event", "err", err)
			}
		}
	}
}

// point publishes the pointer to the event at seq (stored subject subject)
// under prefix, deduplicated by idPrefix + seq.
func (w *Worker) point(ctx context.Context, prefix, idPrefix, subject string, seq uint64) error {
	m := nats.NewMsg(prefix + keyOfStoredSubject(subject))
	s := strconv.FormatUint(seq, 10)
	m.Header.Set(HeaderEventSequence, s)
	return w.publish(ctx, "lane pointer", m, idPrefix+s)
}

// ackFloor is the lowest ack floor of the partition consumers that still
// have events to deliver or to be acked: every event at or below it has been
// applied. With every partition idle it is the stream's last sequence.
func (w *Worker) ackFloor(ctx context.Context) uint64 {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.NATSTimeout)
	defer cancel()
	s, err := w.js.Stream(cctx, EventsStream)
	if err != nil {
		return 0 // scan everything rather than miss an event
	}
	floor := s.CachedInfo().State.LastSeq
	for p := 0; p < w.cfg.Partitions; p++ {
		c, err := w.js.Consumer(cctx, EventsStream, consumerName(p))
		if err != nil {
			return 0
		}
		info := c.CachedInfo()
		if info.NumPending == 0 && info.NumAckPending == 0 {
			continue
		}
		floor = min(floor, info.AckFloor.Stream)
	}
	return floor
}

func (w *Worker) partitionFloor(ctx context.Context, p int) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.NATSTimeout)
	defer cancel()
	c, err := w.js.Consumer(cctx, EventsStream, consumerName(p))
	if err != nil {
		return 0, err
	}
	return c.CachedInfo().AckFloor.Stream, nil
}

// pointer handles one pointer of a lane (interactive or fair): the earlier unacked events of its key,
// in order, then its event; the pointer is acked once all are applied, and
// handed back with a delay when one of them must be retried later.
func (w *Worker) pointer(ctx context.Context, ptr jetstream.Msg, class int) {
	seq, err := strconv.ParseUint(ptr.Headers().Get(HeaderEventSequence), 10, 64)
	if err != nil {
		w.log.Error("interactive pointer without a sequence; dropping it", "err", err)
		_ = ptr.Term()
		return
	}
	stream, err := w.eventsStream(ctx)
	if err != nil {
		_ = ptr.NakWithDelay(time.Second)
		return
	}
	ev, err := w.getStored(ctx, stream, seq, "")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		_ = ptr.Ack() // gone (aged out): nothing to do
		return
	}
	if err != nil {
		w.log.Warn("interactive: read event (NATS)", "seq", seq, "err", err)
		_ = ptr.NakWithDelay(time.Second)
		return
	}
	// Priority inheritance: the key's earlier events first, in order, each
	// in a slot of this lane's class (ahead of the bulk work).
	if !w.parkedCopy(ctx, ev.Header, ev.Data) {
		err = w.inOrder(ctx, ev.Subject, seq, false, func(ctx context.Context, m *jetstream.RawStreamMsg) string {
			return w.handleIn(ctx, m, class)
		})
	}
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("interactive: earlier events of the key (NATS)", "seq", seq, "err", err)
		}
		_ = ptr.NakWithDelay(time.Second)
		return
	}
	if !w.applyStored(ctx, ev, class) {
		_ = ptr.NakWithDelay(w.cfg.RedeliveryDelay)
		return
	}
	actx, cancel := context.WithTimeout(ctx, w.cfg.NATSTimeout)
	defer cancel()
	_ = ptr.DoubleAck(actx)
}

func (w *Worker) getStored(ctx context.Context, s jetstream.Stream, seq uint64, subject string) (*jetstream.RawStreamMsg, error) {
	var m *jetstream.RawStreamMsg
	err := natsCall(ctx, "read event", w.cfg.NATSTimeout, 3, func(ctx context.Context) error {
		var err error
		if subject == "" {
			m, err = s.GetMsg(ctx, seq)
		} else {
			m, err = s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		}
		return err
	})
	return m, err
}

// applyStored runs a stored event through the one handling path until it
// has its result; false when it must be retried later.
func (w *Worker) applyStored(ctx context.Context, m *jetstream.RawStreamMsg, class int) bool {
	deadline := time.Now().Add(w.cfg.AttemptTimeout)
	for {
		switch outcome := w.handleIn(ctx, m, class); outcome {
		case outcomeSucceeded, outcomeFailed, outcomeRejected, outcomeDuplicate:
			return true
		case outcomeBusy:
			// Another attempt holds it (the partition, or another replica):
			// wait for it to finish or its lease to lapse.
			if time.Now().After(deadline) || !sleepCtx(ctx, 200*time.Millisecond) {
				return false
			}
		default:
			return false
		}
	}
}

// handleIn handles a stored event in a Concurrency slot of class.
func (w *Worker) handleIn(ctx context.Context, m *jetstream.RawStreamMsg, class int) string {
	if w.slots.acquire(ctx, class) != nil {
		return outcomeAbandoned
	}
	defer w.slots.release()
	return w.handle(ctx, &storedMsg{m: m})
}

// partitionOfStored reads p of a stored subject authflow.events.<p>.<key>.
func partitionOfStored(subject string) (int, bool) {
	rest, ok := strings.CutPrefix(subject, EventsSubjectPrefix)
	if !ok {
		return 0, false
	}
	ps, _, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(ps)
	return p, err == nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// storedMsg is an event read from the stream by sequence, handled outside
// its partition's delivery: acks and naks are no-ops (the partition's own
// delivery of the same event is answered from the ledger when it comes).
type storedMsg struct{ m *jetstream.RawStreamMsg }

func (s *storedMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: s.m.Sequence}, NumDelivered: 1,
		Stream: EventsStream, Timestamp: s.m.Time}, nil
}
func (s *storedMsg) Data() []byte                     { return s.m.Data }
func (s *storedMsg) Headers() nats.Header             { return s.m.Header }
func (s *storedMsg) Subject() string                  { return s.m.Subject }
func (s *storedMsg) Reply() string                    { return "" }
func (s *storedMsg) Ack() error                       { return nil }
func (s *storedMsg) DoubleAck(context.Context) error  { return nil }
func (s *storedMsg) Nak() error                       { return nil }
func (s *storedMsg) NakWithDelay(time.Duration) error { return nil }
func (s *storedMsg) InProgress() error                { return nil }
func (s *storedMsg) Term() error                      { return nil }
func (s *storedMsg) TermWithReason(string) error      { return nil }
