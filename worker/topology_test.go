package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authflow/authflow/worker"
)

// TestTopologyLeastPrivilege: once an operator has created the streams, the
// ledger and the consumers, a worker whose NATS user may only read their
// info (no create, update or delete) starts: EnsureTopology looks before it
// writes.
func TestTopologyLeastPrivilege(t *testing.T) {
	readOnly := &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{"$JS.API.INFO", "$JS.API.STREAM.INFO.>", "$JS.API.CONSUMER.INFO.>"},
		},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: "admin", Password: "a"},
			{Username: "worker", Password: "w", Permissions: readOnly},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("not ready")
	}
	t.Cleanup(s.Shutdown)
	topo := worker.Topology{Partitions: 4, Replicas: 1, LedgerTTL: time.Hour, EventsMaxAge: time.Hour,
		ResultsMaxAge: time.Hour, DLQMaxAge: time.Hour, ResultsDuplicates: time.Minute, AckWait: 5 * time.Second, MaxMsgBytes: 1 << 20}
	ensure := func(user, pass string) error {
		nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, pass))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = worker.EnsureTopology(ctx, jetStream(t, nc), topo)
		return err
	}
	if err := ensure("worker", "w"); err == nil {
		t.Fatal("a read-only user created the topology: the permissions in this test are not restrictive")
	}
	if err := ensure("admin", "a"); err != nil {
		t.Fatalf("admin: %v", err)
	}
	if err := ensure("worker", "w"); err != nil {
		t.Fatalf("read-only worker on an existing topology: %v", err)
	}
}
