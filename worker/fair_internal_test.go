package worker

import "testing"

func TestBacklogMinority(t *testing.T) {
	b := newBacklog()
	for i := range 600 {
		b.add(i%2, uint64(i+1), "hr/reorg")
	}
	if !b.minority("itsm/tickets") {
		t.Error("a source with nothing queued beside 600 events of another is not a minority")
	}
	if b.minority("hr/reorg") {
		t.Error("the largest source is a minority")
	}
	for i := range 200 {
		b.add(0, uint64(1000+i), "itsm/tickets")
	}
	if b.minority("itsm/tickets") {
		t.Error("200 of 800 queued (a quarter of the largest or more) is still a minority")
	}
	// Everything at or below the floors is finished.
	b.trim(func(p int) uint64 { return 2000 })
	if b.total != 0 || len(b.count) != 0 || len(b.parts) != 0 {
		t.Errorf("after trimming everything: total %d, counts %v, parts %d", b.total, b.count, len(b.parts))
	}
	if b.minority("itsm/tickets") {
		t.Error("a minority with no backlog at all")
	}
	// Partial trim per partition.
	for i := range 700 {
		b.add(i%2, uint64(3000+i), "hr/reorg")
	}
	b.trim(func(p int) uint64 {
		if p == 0 {
			return 3349 // drops the first 175 entries of partition 0
		}
		return 0
	})
	if b.total != 700-175 {
		t.Errorf("total %d after a partial trim, want %d", b.total, 700-175)
	}
}
