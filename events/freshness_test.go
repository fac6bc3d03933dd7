package events

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// stamp is an RFC 3339 date-time by its parts, so that a test can say what
// instant it denotes, and whether it is a calendar date-time at all,
// without asking the time package.
type stamp struct {
	year, month, day, hour, minute, second int
	frac                                   string // "" or digits
	z                                      bool   // "Z"; otherwise off
	off                                    int    // minutes east of UTC
}

func (s stamp) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%04d-%02d-%02dT%02d:%02d:%02d", s.year, s.month, s.day, s.hour, s.minute, s.second)
	if s.frac != "" {
		b.WriteString("." + s.frac)
	}
	switch {
	case s.z:
		b.WriteString("Z")
	case s.off < 0:
		fmt.Fprintf(&b, "-%02d:%02d", -s.off/60, -s.off%60)
	default:
		fmt.Fprintf(&b, "+%02d:%02d", s.off/60, s.off%60)
	}
	return b.String()
}

// valid reports whether s is a date-time RFC 3339 allows (four-digit year,
// a real calendar day, no leap second, offset within ±23:59) in the form
// the decoder takes (at most 9 fraction digits).
func (s stamp) valid() bool {
	return 0 <= s.year && s.year <= 9999 && 1 <= s.month && s.month <= 12 && 1 <= s.day && s.day <= daysIn(s.year, s.month) &&
		0 <= s.hour && s.hour <= 23 && 0 <= s.minute && s.minute <= 59 && 0 <= s.second && s.second <= 59 &&
		len(s.frac) <= 9 && (s.z || -(23*60+59) <= s.off && s.off <= 23*60+59)
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 to a proleptic Gregorian date
// (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int) int {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	doy := (153*((m+9)%12)+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// instant is s in nanoseconds since the Unix epoch, computed from its parts.
func (s stamp) instant() *big.Int {
	secs := int64(daysFromCivil(s.year, s.month, s.day))*86400 + int64(s.hour*3600+s.minute*60+s.second)
	if !s.z {
		secs -= int64(s.off) * 60
	}
	ns := 0
	for i := range 9 {
		ns *= 10
		if i < len(s.frac) {
			ns += int(s.frac[i] - '0')
		}
	}
	v := new(big.Int).Mul(big.NewInt(secs), big.NewInt(1e9))
	return v.Add(v, big.NewInt(int64(ns)))
}

func nanos(t time.Time) *big.Int {
	v := new(big.Int).Mul(big.NewInt(t.Unix()), big.NewInt(1e9))
	return v.Add(v, big.NewInt(int64(t.Nanosecond())))
}

// stampOf writes t at a zone offset of off minutes (Z when z) with its
// nanoseconds in digits fraction digits (0 or 9 when they are not zero).
func stampOf(t time.Time, z bool, off int, digits int) stamp {
	if z {
		off = 0
	}
	t = t.In(time.FixedZone("", off*60))
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	s := stamp{year: y, month: int(mo), day: d, hour: h, minute: mi, second: sec, z: z, off: off}
	if ns := t.Nanosecond(); ns != 0 || digits > 0 {
		s.frac = fmt.Sprintf("%09d", ns)
		if ns == 0 {
			s.frac = s.frac[:digits]
		}
	}
	return s
}

// freshnessPolicies are the policies the property is checked under.
func freshnessPolicies(t testing.TB) map[string]*Policy {
	t.Helper()
	ps := map[string]*Policy{"dev (24h, 5m)": DevPolicy(), "test (1h, 2m)": testPolicy(t)}
	for _, c := range []struct{ age, skew string }{{"720h", "0s"}, {"1m", "1h"}} {
		p, err := ParsePolicy([]byte("version: 1\nmaxAge: " + c.age + "\nmaxFutureSkew: " + c.skew + "\nsources:\n  \"*\":\n    types: [\"*\"]\n"))
		if err != nil {
			t.Fatal(err)
		}
		ps[c.age+", "+c.skew] = p
	}
	return ps
}

// freshnessNows are the clocks the property is checked at, including both
// ends of the range a time.Time can be decoded into.
var freshnessNows = []time.Time{
	time.Date(2026, 11, 26, 9, 0, 0, 500_000_000, time.UTC),
	time.Unix(0, 0).UTC(),
	time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
}

// wantFreshness is CheckFreshness's reference: exact integer arithmetic on
// instants, no time.Duration anywhere near the event's time.
func wantFreshness(at *big.Int, now time.Time, p *Policy) Code {
	delta := new(big.Int).Sub(at, nanos(now)) // event time - now
	switch {
	case delta.Cmp(big.NewInt(-int64(p.maxAge))) < 0:
		return CodeExpired
	case delta.Cmp(big.NewInt(int64(p.maxFutureSkew))) > 0:
		return CodeFutureEvent
	}
	return ""
}

// checkStamp decodes an event dated s and checks that the decoder accepts
// exactly the valid stamps, reads the instant they denote, that the schema
// agrees when sch is set, and that CheckFreshness agrees with the reference
// under every policy at every now.
func checkStamp(t *testing.T, s stamp, policies map[string]*Policy, sch func([]byte) bool) {
	t.Helper()
	raw := without("time", `"time":"`+s.String()+`"`)
	ev, err := Decoder{}.Decode(raw)
	if s.valid() != (err == nil) {
		t.Fatalf("%s: valid = %v, Decode: %v", s, s.valid(), err)
	}
	if sch != nil && sch(raw) != s.valid() {
		t.Fatalf("%s: valid = %v, but the schema says %v", s, s.valid(), !s.valid())
	}
	if err != nil {
		if e, ok := err.(*Error); !ok || e.Code != CodeInvalidEvent || e.Field != "time" {
			t.Fatalf("%s: Decode error %v, want invalid_event on time", s, err)
		}
		return
	}
	at := s.instant()
	if nanos(ev.Time).Cmp(at) != 0 {
		t.Fatalf("%s: decoded as %v, want %s ns since the epoch", s, ev.Time, at)
	}
	for name, p := range policies {
		for _, now := range freshnessNows {
			err := p.CheckFreshness(ev, now)
			if got, want := CodeOf(err), wantFreshness(at, now, p); got != want {
				t.Fatalf("%s at %v, policy %s: CheckFreshness = %v, want code %q", s, now, name, err, want)
			}
			if err == nil {
				continue
			}
			msg := err.Error()
			if strings.Contains(msg, "2562047h") || strings.Contains(msg, " -") {
				t.Fatalf("%s at %v: message shows an overflowed duration: %q", s, now, msg)
			}
			if want := map[Code]string{CodeExpired: " old;", CodeFutureEvent: " ahead;"}[CodeOf(err)]; !strings.Contains(msg, want) {
				t.Fatalf("%s at %v: message %q lacks %q", s, now, msg, want)
			}
		}
	}
}

// TestCheckFreshnessProperty checks CheckFreshness against exact integer
// arithmetic over the whole RFC 3339 range, years 0000-9999, offsets
// -23:59..+23:59, fractions of 0-9 digits, plus stamps that are not valid
// date-times (Feb 30, hour 24, offset 24:00, 10 fraction digits), half of
// them drawn near the policies' bounds (±3 s and ±1 ns), with a fixed seed.
func TestCheckFreshnessProperty(t *testing.T) {
	t.Parallel()
	policies := freshnessPolicies(t)
	s := schemas(t)
	schemaOK := func(raw []byte) bool { ok, _ := validates(s.event, raw); return ok }
	r := rand.New(rand.NewPCG(2026, 11))
	pick := func(lo, hi int) int { // mostly in [lo, hi], sometimes just outside
		if r.IntN(50) == 0 {
			return []int{lo - 1, hi + 1}[r.IntN(2)]
		}
		return lo + r.IntN(hi-lo+1)
	}
	offset := func() (bool, int) {
		if r.IntN(3) == 0 {
			return true, 0
		}
		return false, pick(-(23*60 + 59), 23*60+59)
	}
	n := 0
	for name, p := range policies {
		for _, now := range freshnessNows {
			for range 150 { // anywhere in the range
				z, off := offset()
				st := stamp{year: r.IntN(10000), month: pick(1, 12), day: pick(1, 31), hour: pick(0, 23),
					minute: pick(0, 59), second: pick(0, 59), z: z, off: off}
				digits := r.IntN(10)
				if r.IntN(50) == 0 {
					digits = 10
				}
				for range digits {
					st.frac += string(rune('0' + r.IntN(10)))
				}
				checkStamp(t, st, map[string]*Policy{name: p}, schemaOK)
				n++
			}
			for range 150 { // near a bound
				bound := []time.Duration{-p.maxAge, p.maxFutureSkew, 0}[r.IntN(3)]
				jitter := time.Duration(r.Int64N(int64(6*time.Second))) - 3*time.Second
				if r.IntN(2) == 0 {
					jitter = time.Duration(r.IntN(3) - 1)
				}
				z, off := offset()
				if off < -(23*60+59) || off > 23*60+59 {
					off = 0
				}
				checkStamp(t, stampOf(now.Add(bound+jitter), z, off, r.IntN(10)), map[string]*Policy{name: p}, schemaOK)
				n++
			}
		}
	}
	t.Logf("%d stamps", n)
}

// FuzzCheckFreshness is the same property over fuzzed parts; its seeds are
// the reported far-future and far-past times.
func FuzzCheckFreshness(f *testing.F) {
	for _, s := range []struct {
		y, mo, d, h, mi, s int
		ns                 uint32
		digits             uint8
		off                int
		z                  bool
	}{
		{9999, 12, 31, 23, 59, 59, 0, 0, 0, true},
		{2400, 1, 1, 0, 0, 0, 0, 0, 0, true},
		{2200, 1, 1, 0, 0, 0, 0, 0, 0, true},
		{1, 1, 1, 0, 0, 0, 0, 0, 0, true},
		{1, 1, 1, 0, 0, 0, 0, 0, 23*60 + 59, false},
		{9999, 12, 31, 23, 59, 59, 999999999, 9, -(23*60 + 59), false},
		{2026, 11, 26, 9, 5, 0, 500000001, 9, 0, true},
		{2026, 11, 25, 9, 0, 0, 499999999, 9, 0, true},
		{2026, 2, 29, 9, 0, 0, 0, 0, 0, true},
		{2026, 11, 26, 24, 0, 0, 0, 0, 0, true},
	} {
		f.Add(s.y, s.mo, s.d, s.h, s.mi, s.s, s.ns, s.digits, s.off, s.z)
	}
	policies := freshnessPolicies(f)
	f.Fuzz(func(t *testing.T, year, month, day, hour, minute, second int, ns uint32, digits uint8, off int, z bool) {
		st := stamp{year: year, month: month, day: day, hour: hour, minute: minute, second: second, z: z, off: off}
		if st.year < -1 || st.year > 10000 || st.month < -1 || st.month > 100 || st.day < -1 || st.day > 100 ||
			st.hour < -1 || st.hour > 100 || st.minute < -1 || st.minute > 100 || st.second < -1 || st.second > 100 ||
			(!z && (off < -100*60 || off > 100*60)) {
			t.Skip("parts the stamp cannot write in their fields")
		}
		if st.year < 0 || st.month < 0 || st.day < 0 || st.hour < 0 || st.minute < 0 || st.second < 0 {
			t.Skip("negative parts do not render as RFC 3339 fields")
		}
		if d := int(digits % 11); d > 0 {
			st.frac = fmt.Sprintf("%010d", ns)[10-d:]
		}
		checkStamp(t, st, policies, nil)
	})
}

// TestCheckFreshnessFarTimes: the reported times, and the ±23:59 offsets at
// the bounds, decode and get the right verdict with a clear message.
func TestCheckFreshnessFarTimes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	p := DevPolicy() // 24h, 5m
	tests := []struct {
		time string
		code Code
		msg  string
	}{
		{"9999-12-31T23:59:59Z", CodeFutureEvent, "time: event is dated at least 7972 years ahead; the policy allows 5m0s of clock skew"},
		{"9999-12-31T23:59:59.999999999-23:59", CodeFutureEvent, "time: event is dated at least 7973 years ahead;"},
		{"2400-01-01T00:00:00Z", CodeFutureEvent, "time: event is dated at least 373 years ahead;"},
		{"2200-01-01T00:00:00Z", CodeFutureEvent, "time: event is dated 1517343h0m0s ahead;"},
		{"0001-01-01T00:00:00Z", CodeExpired, "time: event is at least 2024 years old; the policy accepts up to 24h0m0s"},
		{"0001-01-01T00:00:00+23:59", CodeExpired, "time: event is at least 2025 years old;"},
		{"0000-01-01T00:00:00Z", CodeExpired, "time: event is at least 2025 years old;"},
		{"1800-01-01T00:00:00Z", CodeExpired, "time: event is 1988985h0m0s old;"},
		{"2026-11-27T08:59:00+23:59", "", ""}, // = now
		{"2026-11-25T09:01:00-23:59", "", ""}, // = now
		{"2026-11-27T09:04:00+23:59", "", ""}, // now + 5m
		{"2026-11-27T09:04:00.000000001+23:59", CodeFutureEvent, "time: event is dated 5m0s ahead;"},
		{"2026-11-24T09:01:00-23:59", "", ""}, // now - 24h
		{"2026-11-24T09:00:59.999999999-23:59", CodeExpired, "time: event is 24h0m0s old;"},
	}
	for _, tc := range tests {
		ev := decodeOK(t, without("time", `"time":"`+tc.time+`"`))
		err := p.CheckFreshness(ev, now)
		if CodeOf(err) != tc.code {
			t.Errorf("%s: CheckFreshness = %v, want code %q", tc.time, err, tc.code)
			continue
		}
		if err != nil && !strings.HasPrefix(strings.TrimPrefix(err.Error(), string(tc.code)+": "), tc.msg) {
			t.Errorf("%s: message %q, want it to start %q", tc.time, err, tc.msg)
		}
	}
}
