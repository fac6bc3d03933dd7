package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/authflow/authflow/worker"
)

// runVersion prints the version, the VCS revision and the Go version.
func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	bi, _ := debug.ReadBuildInfo()
	fmt.Fprintln(stdout, versionLine(buildVersion(worker.Version, bi)))
	return nil
}

// buildInfo is what a binary knows about its build.
type buildInfo struct {
	Version   string // v1.2.3, a git describe, or "devel"
	Revision  string // the VCS revision, or "unknown"
	Modified  bool   // the working tree had changes
	GoVersion string
}

// buildVersion reads the build of this binary from stamped (worker.Version, which
// release builds and `make build` set with -ldflags -X; the worker's
// authflow_build_info reads the same variable)
// and Go's build information (nil when there is none).
func buildVersion(stamped string, bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: stamped, Revision: "unknown", GoVersion: runtime.Version()}
	if bi == nil {
		if b.Version == "" {
			b.Version = "devel"
		}
		return b
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// versionLine is the line `authflow version` prints:
// "authflow v1.2.3 (revision 0123abcd..., modified) go1.26.8 linux/amd64".
func versionLine(b buildInfo) string {
	rev := b.Revision
	if b.Modified {
		rev += ", modified"
	}
	return fmt.Sprintf("authflow %s (revision %s) %s %s/%s", b.Version, rev, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}
