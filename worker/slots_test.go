package worker

import (
	"context"
	"testing"
	"time"
)

// TestSlotsPriority: a freed slot goes to the waiting interactive acquirer
// before bulk ones that waited longer; a cancelled waiter gives up its place
// without losing a slot.
func TestSlotsPriority(t *testing.T) {
	s := newSlots(1)
	ctx := context.Background()
	if err := s.acquire(ctx, classBulk); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 3)
	start := func(c int) {
		go func() {
			if err := s.acquire(ctx, c); err != nil {
				t.Error(err)
				return
			}
			order <- c
			s.release()
		}()
		time.Sleep(20 * time.Millisecond) // queue them in this order
	}
	cctx, cancel := context.WithCancel(ctx)
	cancelled := make(chan error, 1)
	go func() { cancelled <- s.acquire(cctx, classInteractive) }()
	time.Sleep(20 * time.Millisecond)
	start(classBulk)
	start(classFair)
	start(classInteractive)
	cancel()
	if err := <-cancelled; err == nil {
		t.Fatal("a cancelled acquire returned a slot")
	}
	s.release()
	got := []int{<-order, <-order, <-order}
	if want := []int{classInteractive, classFair, classBulk}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("slots went to classes %v, want %v", got, want)
	}
	// The last holder releases just after it reports.
	var free int
	for range 100 {
		s.mu.Lock()
		free = s.free
		s.mu.Unlock()
		if free == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if free != 1 {
		t.Errorf("%d free slots at the end, want 1", free)
	}
}
