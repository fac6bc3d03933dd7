package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBusyPorts holds a port and starts each command that listens on it:
// the start fails at once with exit status 2 and a message naming the
// flag, before anything else is started.
func TestBusyPorts(t *testing.T) {
	emuClearEnv(t)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().String()
	policy := writeFile(t, "policy.yaml", testPolicy)
	dev := func(flag string) []string {
		args := []string{"dev", "--nats-listen", "127.0.0.1:0", "--graph-listen", "127.0.0.1:0", "--ingress-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}
		for i := range args {
			if args[i] == flag {
				args[i+1] = busy
			}
		}
		return args
	}
	tests := []struct {
		name string
		args []string
		flag string
	}{
		{"dev nats", dev("--nats-listen"), "--nats-listen"},
		{"dev graph", dev("--graph-listen"), "--graph-listen"},
		{"dev metrics", dev("--metrics-listen"), "--metrics-listen"},
		{"dev ingress", dev("--ingress-listen"), "--ingress-listen"},
		{"emulator", []string{"emulator", "--token", "t", "--listen", busy}, "--listen"},
		{"worker metrics", []string{"worker", "--policy", policy, "--graph-token", "t", "--metrics-listen", busy, "--nats-url", "nats://127.0.0.1:1"}, "--metrics-listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := tt.args
			if args[0] == "dev" {
				args = append(args, "--data", data)
			}
			code, stdout, stderr := runCLI(t, args...)
			want := "authflow " + args[0] + ": " + tt.flag + " " + busy + ": address already in use\n"
			if code != 2 || stderr != want {
				t.Fatalf("exit %d, stderr %q; want 2, %q", code, stderr, want)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
			// Nothing was started: the embedded server made no store.
			if _, err := os.Stat(filepath.Join(data, "jetstream")); err == nil {
				t.Error("the embedded NATS server started")
			}
		})
	}
}

// TestListenHostRequired checks that every listen flag refuses an empty
// host, which would listen on every interface.
func TestListenHostRequired(t *testing.T) {
	emuClearEnv(t)
	policy := writeFile(t, "policy.yaml", testPolicy)
	for _, args := range [][]string{
		{"emulator", "--token", "t", "--listen", ":0"},
		{"dev", "--nats-listen", ":0"},
		{"dev", "--graph-listen", ":0"},
		{"dev", "--metrics-listen", ":0"},
		{"worker", "--policy", policy, "--graph-token", "t", "--metrics-listen", ":0"},
	} {
		flag := args[len(args)-2]
		code, _, stderr := runCLI(t, args...)
		if code != 2 || !strings.Contains(stderr, "invalid "+flag+` ":0": give a host`) {
			t.Errorf("%s %s :0: exit %d, stderr %q", args[0], flag, code, stderr)
		}
	}
}
