package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// eventSource is the CloudEvents source of the bench's bulk events;
// interactiveSource that of the interactive scenario's helpdesk events,
// which the dev policy classes interactive (every helpdesk/ source is).
const (
	eventSource       = "bench"
	interactiveSource = "helpdesk/bench"
)

// phoneType is the phone every bench event sets: the seeded users all have
// one, so each event is GET user, GET methods, PATCH phone.
const phoneType = "mobile"

// env is the world of one measurement: an embedded JetStream server with
// its store in a fresh directory, the Graph emulator on 127.0.0.1 seeded
// with users, and an observer connection that counts results.
type env struct {
	ns        *server.Server
	nc        *nats.Conn
	js        jetstream.JetStream
	emu       *graphclienttest.Emulator
	graphURL  string // the emulator's Graph root, .../v1.0
	token     string
	stopGraph func()
	dir       string
	users     int // events rotate over users 0..users-1
}

type envConfig struct {
	parentDir  string // the store goes in a new directory under it
	sync       bool   // JetStream SyncAlways
	users      int
	extraUsers int // seeded after users, never the target of a backlog event
	partitions int
	faults     graphclienttest.Faults
	noNATS     bool // the emulator only (the script needs no queue)
	log        *slog.Logger
}

// newEnv starts an env. The caller must close it.
func newEnv(ctx context.Context, cfg envConfig) (_ *env, err error) {
	e := &env{users: cfg.users}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if err := e.startEmulator(cfg); err != nil {
		return nil, err
	}
	if cfg.noNATS {
		return e, nil
	}
	if e.dir, err = os.MkdirTemp(cfg.parentDir, "authflow-bench-"); err != nil {
		return nil, fmt.Errorf("bench store directory: %w", err)
	}
	e.ns, err = server.NewServer(&server.Options{
		ServerName: "authflow-bench",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   filepath.Join(e.dir, "jetstream"),
		SyncAlways: cfg.sync,
		NoSigs:     true,
		NoLog:      true,
		// The backlog scenario publishes fast: give it room.
		MaxPending: 256 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("bench nats server: %w", err)
	}
	go e.ns.Start()
	if !e.ns.ReadyForConnections(15 * time.Second) {
		return nil, errors.New("bench nats server: not ready after 15s")
	}
	if e.nc, err = nats.Connect(e.ns.ClientURL(), nats.Name("authflow-bench")); err != nil {
		return nil, fmt.Errorf("bench nats connect: %w", err)
	}
	if e.js, err = jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		return nil, fmt.Errorf("bench jetstream: %w", err)
	}

	// The same streams, ledger and partition consumers the worker makes,
	// so that events can be stored before a consumer starts.
	if _, err := worker.EnsureTopology(ctx, e.js, topology(cfg.partitions)); err != nil {
		return nil, fmt.Errorf("bench topology: %w", err)
	}
	return e, nil
}

// startEmulator serves a freshly seeded emulator on 127.0.0.1.
func (e *env) startEmulator(cfg envConfig) error {
	e.token = randomToken()
	var err error
	if e.emu, err = graphclienttest.New(graphclienttest.Options{Token: e.token}); err != nil {
		return fmt.Errorf("bench emulator: %w", err)
	}
	if err := e.emu.SetFaults(cfg.faults); err != nil {
		return fmt.Errorf("bench emulator: %w", err)
	}
	for i := range cfg.users + cfg.extraUsers {
		if err := e.emu.PutUser(seedUser(i)); err != nil {
			return fmt.Errorf("bench seed user %d: %w", i, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench emulator listen: %w", err)
	}
	e.graphURL = "http://" + ln.Addr().String() + "/v1.0"
	e.stopGraph = serve(ln, e.emu, cfg.log)
	return nil
}

// topology is what worker.New ensures for a Config with these partitions
// and otherwise default settings (R1).
func topology(partitions int) worker.Topology {
	return worker.Topology{
		Partitions:        partitions,
		Replicas:          1,
		LedgerTTL:         worker.DefaultLedgerTTL,
		EventsMaxAge:      worker.DefaultLedgerTTL,
		ResultsMaxAge:     30 * 24 * time.Hour,
		DLQMaxAge:         90 * 24 * time.Hour,
		ResultsDuplicates: 24 * time.Hour,
		AckWait:           worker.DefaultAckWait,
		MaxMsgBytes:       1 << 20,
	}
}

func (e *env) close() {
	if e.stopGraph != nil {
		e.stopGraph()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.ns != nil {
		e.ns.Shutdown()
		e.ns.WaitForShutdown()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// serve serves h on ln until the returned stop is called.
func serve(ln net.Listener, h http.Handler, log *slog.Logger) (stop func()) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("bench http server", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// userID is the object id of seeded user i: a random-looking version 4
// GUID derived from i, as Entra's are random. The user key is the object
// id, so keys hash to partitions as real ones do (sequential ids would
// spread over the partitions unrealistically evenly).
func userID(i int) string {
	h := sha256.Sum256([]byte("authflow-bench-user-" + strconv.Itoa(i)))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// phoneNumber is one of the two numbers user i alternates between, in
// Graph's form. Every user has its own pair, so SMS sign-in stays unique.
func phoneNumber(i, variant int) string {
	return fmt.Sprintf("+1 425%07d", 2_000_000+2*i+variant)
}

// seedUser has a mobile phone with number variant 0.
func seedUser(i int) graphclienttest.User {
	phone, _ := json.Marshal(map[string]string{
		"@odata.type": "#microsoft.graph.phoneAuthenticationMethod",
		"phoneNumber": phoneNumber(i, 0),
		"phoneType":   phoneType,
	})
	return graphclienttest.User{
		ID:                userID(i),
		UserPrincipalName: fmt.Sprintf("bench%06d@contoso.example", i),
		Methods:           []json.RawMessage{phone},
	}
}

// benchEvent is one phone.set event, ready to publish.
type benchEvent struct {
	id      string // CloudEvents id
	source  string // CloudEvents source
	subject string // authflow.events.<key>
	raw     []byte
}

// newEvent builds event n of a run: it targets user n mod users and sets
// the number the user does not have at that point of the sequence, so that
// every event really writes (users are seeded with variant 0).
func newEvent(run string, n, users int, now time.Time) (benchEvent, error) {
	u := n % users
	round := n / users
	return phoneEvent(eventSource, fmt.Sprintf("%s-%d", run, n), u, phoneNumber(u, 1-round%2), now)
}

// interactiveNumber is the number an interactive event gives user i: one
// no bulk event sets, so the event writes whatever came before it, and
// unique to the user (SMS sign-in).
func interactiveNumber(i int) string {
	return fmt.Sprintf("+1 425%07d", 5_000_000+i)
}

// phoneEvent is a phone.set event from source giving user u's mobile
// phone number.
func phoneEvent(source, id string, u int, number string, now time.Time) (benchEvent, error) {
	data := struct {
		PhoneType   string `json:"phoneType"`
		PhoneNumber string `json:"phoneNumber"`
	}{phoneType, number}
	body, err := json.Marshal(data)
	if err != nil {
		return benchEvent{}, fmt.Errorf("encode bench event data: %w", err)
	}
	raw, err := events.MarshalEvent(id, source, events.TypePhoneSet, userID(u), now, body)
	if err != nil {
		return benchEvent{}, fmt.Errorf("encode bench event: %w", err)
	}
	return benchEvent{id: id, source: source, subject: worker.EventSubject(userID(u)), raw: raw}, nil
}

// message is the event as a publisher sends it: Nats-Msg-Id is its key.
func (ev benchEvent) message() *nats.Msg {
	m := nats.NewMsg(ev.subject)
	m.Data = ev.raw
	m.Header.Set(nats.MsgIdHdr, events.EventKey(ev.source, ev.id))
	return m
}

// publishBacklog stores events first..first+n-1 of run and waits for every
// acknowledgement.
func (e *env) publishBacklog(ctx context.Context, run string, first, n int) error {
	now := time.Now()
	for i := first; i < first+n; i++ {
		ev, err := newEvent(run, i, e.users, now)
		if err != nil {
			return err
		}
		if _, err := e.js.PublishMsgAsync(ev.message(), jetstream.WithStallWait(30*time.Second)); err != nil {
			return fmt.Errorf("publish bench event %d: %w", i, err)
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(5 * time.Minute):
		return errors.New("publish bench backlog: no acknowledgement after 5 minutes")
	}
	s, err := e.js.Stream(ctx, worker.EventsStream)
	if err != nil {
		return fmt.Errorf("publish bench backlog: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("publish bench backlog: %w", err)
	}
	if info.State.Msgs < uint64(first+n) {
		return fmt.Errorf("publish bench backlog: the stream holds %d events, want %d", info.State.Msgs, first+n)
	}
	return nil
}

// graphRequests returns the emulator's request count and the count of
// answers with a 2xx status.
func graphRequests(s graphclienttest.Stats) (total, ok int) {
	for _, byStatus := range s.Requests {
		for status, n := range byStatus {
			total += n
			if len(status) == 3 && status[0] == '2' {
				ok += n
			}
		}
	}
	return total, ok
}
