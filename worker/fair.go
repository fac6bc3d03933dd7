package worker

import (
	"sync"
	"time"
)

// Fairness between bulk sources. The partitions are FIFO across sources:
// an event of a source with a few events queues behind every event another
// source queued before it in the same partition (a re-org of 100,000 movers
// from HR would hold the 20 leavers a ticketing system sent after it). The
// scanner sees every event before the partitions reach it, so it keeps a
// count of the unfinished bulk events of each source (those above their
// partition's ack floor) and gives a bulk event of a minority source — one
// whose backlog is under a quarter of the largest source's, while the
// backlog is large enough to matter — a pointer on the fair lane
// (authflow.priority.fair.<key>, consumer authflow-fair), which every
// replica serves with fairSlots() slots beside Concurrency, exactly like
// the interactive lane: the key's earlier events first, then the event,
// each through its ledger lease. So a source's share of the capacity does
// not depend on how much another source has queued, and the order of each
// key is kept as for the interactive lane.

const (
	// fairMinBacklog is the backlog below which nobody waits long enough
	// for the fair lane to matter.
	fairMinBacklog = 500
	// fairRatio: a source whose backlog is under 1/fairRatio of the
	// largest source's is a minority.
	fairRatio = 4
	// backlogTrimEvery is how often the scanner drops finished events.
	backlogTrimEvery = time.Second
)

// backlog counts unfinished scanned bulk events per source.
type backlog struct {
	parts map[int][]backlogEntry // per partition, in stream order
	count map[string]int
	total int
	names map[string]string // interned source names
}

type backlogEntry struct {
	seq    uint64
	source string
}

func newBacklog() *backlog {
	return &backlog{parts: map[int][]backlogEntry{}, count: map[string]int{}, names: map[string]string{}}
}

func (b *backlog) add(p int, seq uint64, source string) {
	name, ok := b.names[source]
	if !ok {
		if len(b.names) > 10000 {
			// A flood of distinct forged sources must not grow this without
			// bound; they are rejected by policy anyway.
			return
		}
		name = source
		b.names[source] = name
	}
	b.parts[p] = append(b.parts[p], backlogEntry{seq: seq, source: name})
	b.count[name]++
	b.total++
}

// trim drops the events at or below their partition's ack floor.
func (b *backlog) trim(floor func(p int) uint64) {
	for p, es := range b.parts {
		f := floor(p)
		i := 0
		for i < len(es) && es[i].seq <= f {
			b.count[es[i].source]--
			if b.count[es[i].source] == 0 {
				delete(b.count, es[i].source)
			}
			i++
		}
		b.total -= i
		if i == len(es) {
			delete(b.parts, p)
			continue
		}
		b.parts[p] = es[i:]
	}
}

// minority reports whether source's events should take the fair lane.
func (b *backlog) minority(source string) bool {
	if b.total < fairMinBacklog {
		return false
	}
	largest := 0
	for _, n := range b.count {
		largest = max(largest, n)
	}
	return b.count[source]*fairRatio < largest
}

// lockedBacklog is the backlog the scanner's two readers share.
type lockedBacklog struct {
	mu       sync.Mutex
	b        *backlog
	lastTrim time.Time
}

// addAndCheck counts an event of source and reports whether it takes the
// fair lane (counted before it is added); trim runs at most every
// backlogTrimEvery, under the lock.
func (l *lockedBacklog) addAndCheck(p int, seq uint64, source string, trim func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.lastTrim) > backlogTrimEvery {
		trim()
		l.lastTrim = time.Now()
	}
	fair := l.b.minority(source)
	l.b.add(p, seq, source)
	return fair
}
