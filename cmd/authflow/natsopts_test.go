package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authflow/authflow/worker"
)

// TestNATSTimeoutIsARetryWindow starts `authflow dlq list` before its
// server: the first attempt fails (the port answers, but not as NATS), the
// command keeps trying, and it succeeds once the server is up, well within
// --nats-timeout.
func TestNATSTimeoutIsARetryWindow(t *testing.T) {
	// A store with the streams, for the late server to start from.
	dir := t.TempDir()
	first := startTestNATS(t, dir)
	_, js := connectJS(t, first)
	ensureTopology(t, js)
	first.Shutdown()
	first.WaitForShutdown()

	// Until the server starts, its port accepts connections and closes them.
	fake, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fake.Addr().(*net.TCPAddr).Port
	tried := make(chan struct{})
	var once sync.Once
	go func() {
		for {
			c, err := fake.Accept()
			if err != nil {
				return
			}
			c.Close()
			once.Do(func() { close(tried) })
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dlq", "list", "--nats-url", "nats://127.0.0.1:" + strconv.Itoa(port), "--nats-timeout", "45s"}, &stdout, &stderr)
	}()
	select {
	case <-tried:
	case code := <-done:
		t.Fatalf("exit %d before the server started: %s", code, stderr.String())
	}
	fake.Close()
	late, err := server.NewServer(&server.Options{ServerName: "late", Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go late.Start()
	t.Cleanup(func() { late.Shutdown(); late.WaitForShutdown() })
	if !late.ReadyForConnections(10 * time.Second) {
		t.Fatal("the late server did not start")
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// TestNATSTimeoutElapses checks the failure once the window is over: it
// names the URLs, with the password hidden, and the flag.
func TestNATSTimeoutElapses(t *testing.T) {
	code, _, stderr := runCLI(t, "dlq", "list", "--nats-url", "nats://authflow:s3cret@127.0.0.1:1,127.0.0.1:2", "--nats-timeout", "300ms")
	want := "authflow dlq: connect to NATS at nats://authflow:xxxxx@127.0.0.1:1,nats://127.0.0.1:2 (--nats-url): no server answered within --nats-timeout 300ms"
	if code != 1 || !strings.HasPrefix(stderr, want) || strings.Contains(stderr, "s3cret") {
		t.Fatalf("exit %d, stderr %q; want 1, %q...", code, stderr, want)
	}
}

// TestDevNATSMaxPayload checks that the embedded server of authflow dev
// takes exactly the messages the events stream stores.
func TestDevNATSMaxPayload(t *testing.T) {
	s, err := server.NewServer(devNATSOptions("127.0.0.1", server.RANDOM_PORT, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("not ready")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got != worker.MaxMessageBytes {
		t.Fatalf("max_payload %d, want %d", got, worker.MaxMessageBytes)
	}
}
