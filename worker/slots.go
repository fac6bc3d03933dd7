package worker

import (
	"context"
	"sync"
)

// Classes of work competing for the Concurrency slots, highest first.
const (
	classInteractive = iota // the interactive lane: a person is waiting
	classFair               // the fair lane: a minority bulk source
	classBulk               // the partitions
	numClasses
)

// slots is the worker's Concurrency as a priority semaphore: a freed slot
// goes to the longest-waiting acquirer of the highest class, so interactive
// events (and the bulk events they bring forward) take the capacity they
// need and the bulk drain uses the rest. A slot is held for one event's
// handling, never while an event waits for an earlier one of its key.
type slots struct {
	mu      sync.Mutex
	free    int
	waiters [numClasses][]chan struct{}
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire takes a slot for class c, or returns ctx's error.
func (s *slots) acquire(ctx context.Context, c int) error {
	s.mu.Lock()
	if s.free > 0 && !s.anyWaiting() {
		s.free--
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	s.waiters[c] = append(s.waiters[c], ch)
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, w := range s.waiters[c] {
			if w == ch {
				s.waiters[c] = append(s.waiters[c][:i], s.waiters[c][i+1:]...)
				return ctx.Err()
			}
		}
		// Granted meanwhile: hand the slot on.
		s.releaseLocked()
		return ctx.Err()
	}
}

// release frees a slot taken by acquire.
func (s *slots) release() {
	s.mu.Lock()
	s.releaseLocked()
	s.mu.Unlock()
}

func (s *slots) releaseLocked() {
	for c := range s.waiters {
		if len(s.waiters[c]) > 0 {
			ch := s.waiters[c][0]
			s.waiters[c] = s.waiters[c][1:]
			close(ch)
			return
		}
	}
	s.free++
}

func (s *slots) anyWaiting() bool {
	for c := range s.waiters {
		if len(s.waiters[c]) > 0 {
			return true
		}
	}
	return false
}
