package events

import (
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

func TestParseSeed(t *testing.T) {
	t.Parallel()
	user, _ := nkeys.CreateUser()
	us, _ := user.Seed()
	curve, _ := nkeys.CreateCurveKeys()
	cs, _ := curve.Seed()
	for _, tt := range []struct {
		name  string
		in    string
		curve bool
		want  string // "" = accepted
	}{
		{"bare signing", string(us), false, ""},
		{"decorated curve", "# public: X...\n\n" + string(cs) + "\n", true, ""},
		{"curve wanted", string(us), true, "holds a signing seed"},
		{"signing wanted", string(cs), false, "holds a curve (sealing) seed"},
		{"nothing", "# only a comment\n", false, "holds no nkeys seed"},
		{"broken", "SUAAAA\n", false, "not an nkeys seed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSeed([]byte(tt.in), tt.curve)
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), string(us)) || strings.Contains(err.Error(), string(cs))) {
				t.Fatal("the error quotes the seed")
			}
		})
	}
}
