package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// runEmulator serves the Microsoft Graph emulator over HTTP until ctx ends:
// Graph under /v1.0/, the admin API under /_emulator/ (see docs/emulator.md).
func runEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("emulator", stderr)
	listenAddr := fs.String("listen", "127.0.0.1:8080", "serve on `HOST:PORT` (port 0: any free port)")
	token := fs.String("token", "", "the bearer `TOKEN` every Graph request must carry (required; a local value, not a production secret)")
	seed := fs.String("seed", "", "load users from `FILE`, a JSON array of users in the admin shape of PUT /_emulator/users/{id}")
	appOnly := fs.Bool("app-only", false, "answer as to an application caller: resetPassword (delegated only) gets 403")
	logLevel := fs.String("log-level", "info", "`LEVEL` of the logs on stderr: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *token == "" {
		return usagef("--token is required: the bearer token clients must send")
	}
	if err := checkListen("listen", *listenAddr); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	emu, err := graphclienttest.New(graphclienttest.Options{Token: *token, AppOnly: *appOnly, Logger: log})
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	if *seed != "" {
		n, err := loadEmulatorSeed(emu, *seed)
		if err != nil {
			return usagef("--seed %s: %v", *seed, err)
		}
		log.Info("seeded users", "count", n, "file", *seed)
	}
	ln, err := listen("listen", *listenAddr)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	// One line, so that scripts and tests can read the address (port 0).
	fmt.Fprintf(stdout, "authflow emulator: graph %s/v1.0 admin %s/_emulator/ token: %s\n", base, base, *token)

	srv := &http.Server{
		Handler:           emu,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Requests in flight (injected latency included) get a few seconds.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("emulator stopped")
	return nil
}

// loadEmulatorSeed puts every user of a JSON array file into the emulator.
func loadEmulatorSeed(emu *graphclienttest.Emulator, path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var users []graphclienttest.User
	if err := json.Unmarshal(b, &users); err != nil {
		return 0, fmt.Errorf("want a JSON array of users: %w", err)
	}
	for i, u := range users {
		if err := emu.PutUser(u); err != nil {
			return 0, fmt.Errorf("user %d (%s): %w", i, u.ID, err)
		}
	}
	return len(users), nil
}
