package graphclienttest

import (
	"errors"
	"net"
	"net/http"
	"time"
)

// TB is the part of testing.TB that NewServer needs, so that this package
// does not import "testing".
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Server is an Emulator listening on 127.0.0.1, like httptest.Server.
type Server struct {
	*Emulator
	// URL is the base URL, http://127.0.0.1:port.
	URL string
	// GraphURL is URL + "/v1.0", the base URL for a Graph client.
	GraphURL string
	// Token is the bearer token the emulator accepts.
	Token string

	srv  *http.Server
	done chan struct{}
}

// DefaultToken is the token NewServer accepts unless an option changes it.
const DefaultToken = "test-token"

// NewServer starts an emulator on 127.0.0.1 with a random port and closes
// it on t.Cleanup. The options start from Options{Token: DefaultToken}.
func NewServer(t TB, opts ...func(*Options)) *Server {
	t.Helper()
	o := Options{Token: DefaultToken}
	for _, f := range opts {
		f(&o)
	}
	e, err := New(o)
	if err != nil {
		t.Fatalf("graphclienttest: %v", err)
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("graphclienttest: listen: %v", err)
		return nil
	}
	s := &Server{
		Emulator: e,
		URL:      "http://" + ln.Addr().String(),
		Token:    o.Token,
		srv:      &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second},
		done:     make(chan struct{}),
	}
	s.GraphURL = s.URL + "/v1.0"
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("emulator server stopped", "err", err)
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and closes its connections; it is safe to call
// more than once.
func (s *Server) Close() {
	_ = s.srv.Close()
	<-s.done
}
