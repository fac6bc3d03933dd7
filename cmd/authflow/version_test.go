package main

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := runCLI(t, args...)
		// A test binary has no VCS stamp and no worker.Version: "devel".
		want := regexp.MustCompile(`^authflow \S+ \(revision \S+(, modified)?\) ` + regexp.QuoteMeta(runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH) + "\n$")
		if code != 0 || stderr != "" || !want.MatchString(stdout) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

func TestBuildVersion(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/authflow/authflow", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}}}
	installed := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/authflow/authflow", Version: "v1.2.3"}}
	tests := []struct {
		name    string
		version string
		bi      *debug.BuildInfo
		want    string
	}{
		{"release build", "v1.2.3-4-g0123456-dirty", stamped, "authflow v1.2.3-4-g0123456-dirty (revision 0123456789abcdef0123456789abcdef01234567, modified) go1.26.8"},
		{"local build without the stamp", "", stamped, "authflow devel (revision 0123456789abcdef0123456789abcdef01234567, modified) go1.26.8"},
		{"go install of a version", "", installed, "authflow v1.2.3 (revision unknown) go1.26.8"},
		{"no build information", "v9", nil, "authflow v9 (revision unknown) " + runtime.Version()},
	}
	for _, tt := range tests {
		got := versionLine(buildVersion(tt.version, tt.bi))
		if want := tt.want + " " + runtime.GOOS + "/" + runtime.GOARCH; got != want {
			t.Errorf("%s: got %q, want %q", tt.name, got, want)
		}
	}
	if strings.Contains(versionLine(buildVersion("", nil)), "()") {
		t.Error("empty parentheses")
	}
}
