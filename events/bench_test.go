package events

import (
	"testing"
)

func benchEvents(b *testing.B) map[string][]byte {
	b.Helper()
	out := map[string][]byte{}
	for _, blk := range docBlocks(b) {
		if blk.kind == "example event" {
			out[blk.name] = blk.body
		}
	}
	return out
}

func BenchmarkDecode(b *testing.B) {
	evs := benchEvents(b)
	for _, typ := range []string{TypeEmployeeJoined, TypeMethodsInventory, TypeDeviceLost} {
		raw := evs[typ]
		b.Run(typ, func(b *testing.B) {
			d := Decoder{DefaultRegion: "US"}
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := d.Decode(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPlan(b *testing.B) {
	ev := decodeOK(b, benchEvents(b)[TypeEmployeeJoined])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Plan(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResultMarshal(b *testing.B) {
	r := sampleResult(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	worker, recipient := testCurveKey(b, 1), pub(b, testCurveKey(b, 2))
	secret := []byte("hG7#kd2Q")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(SecretTAP, secret, recipient, worker); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	raw := benchEvents(b)[TypeEmployeeJoined]
	sig, signer, err := Sign(raw, testUserKey(b, 1))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(raw, sig, signer); err != nil {
			b.Fatal(err)
		}
	}
}
