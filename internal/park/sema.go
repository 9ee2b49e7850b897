package park

import (
	"context"
	"runtime"
	"sync"
	"time"

	"go.uber.org/atomic"

	"github.com/zjj/bytespool/internal/cacheline"
)

// Sema is a counting semaphore whose waiters are served in arrival order,
// with its count spread over shards so that cores that use different
// shards do not contend on one word.
//
// Fast path: with nobody queued, TryAcquire takes n units from the
// caller's shard with one CAS, and Release returns them to the caller's
// shard with one Add and one load of queued. A TryAcquire that finds too
// few units in its shard gathers them from the others, taking half of what
// each has so that its shard has a stock for the next ones, and gives back
// what it gathered if the total falls short. The slow path is a FIFO queue of
// waiter nodes under mu; each node sleeps on its own Event, so a release
// wakes exactly the waiters it satisfies and nobody else.
//
// Fairness: while the queue is non-empty, queued is set and TryAcquire
// fails, so a newcomer queues behind the waiters instead of taking units
// they are waiting for. Units are handed to waiters strictly in queue
// order: the head collects units from the shards as they come back (in
// got) until it has all it needs, and nobody behind it is served before.
// So a large request at the head holds back smaller ones behind it (as
// golang.org/x/sync/semaphore does) and cannot be starved.
//
// Why a release is never lost: a waiter joining the queue stores queued and then
// collects units from every shard, both under mu; Release adds its units
// and then loads queued. All are sequentially consistent atomics, so
// either the collection sees the units (the Add came first), or Release
// sees queued and collects for the waiters under mu itself. The same holds
// for the units a failed gather gives back, which go through Release.
// Units only leave the counts by CAS, and never below zero, so nobody is
// handed units that are not there.
//
// A waiter that gives up (its context ends, or Abort names its owner)
// leaves the queue under mu, returns the units it had collected, and then
// grantLocked runs again, so the waiters behind a cancelled head are not
// held back by it.
type Sema struct {
	_      [cacheline.Size]byte // keep queued off the cache line of whatever precedes the Sema
	queued atomic.Uint32
	_      [cacheline.Size - 4]byte // and off the lines of the fields below

	counts []count // available units, by shard; len(counts) == mask+1
	mask   int

	// stealing counts the steals in progress and steals the finished
	// ones: a steal moves units between shards, so Available sums the
	// shards only while none runs (see Available).
	stealing atomic.Int32
	steals   atomic.Uint32

	waiting atomic.Int32 // nodes in the queue, for Stats
	waits   atomic.Uint64
	waitNs  atomic.Int64

	size uint64        // the units given to Init
	peak atomic.Uint64 // the most units held, as sampled by grantLocked (see Peak)

	mu         sync.Mutex
	head, tail *waiter // the FIFO queue, guarded by mu
	spare      *waiter // recycled nodes (a stack through next), guarded by mu
}

// count is one shard's available units, alone on its cache line.
type count struct {
	n atomic.Uint64
	_ [cacheline.Size - 8]byte
}

// waiter is one place in the queue. Nodes are recycled, so a steady state of
// blocking writers allocates nothing.
type waiter struct {
	ev    Event
	state atomic.Uint32 // pending, granted or aborted; written under Sema.mu
	need  uint64
	got   uint64 // units collected so far, while at the head; guarded by Sema.mu
	owner any    // what Abort matches against
	err   error  // why the wait was aborted
	start time.Time

	prev, next *waiter
}

const (
	pending = iota
	granted
	aborted
)

// Init sets the number of available units, and spreads them over shards
// shards, a power of two; callers name their shard in TryAcquire and
// Release. It must be called before any other method, and at most once.
func (s *Sema) Init(n uint64, shards int) {
	if shards < 1 || shards&(shards-1) != 0 {
		panic("park: shards must be a power of two")
	}
	if n >= 1<<63 {
		panic("park: semaphore size out of range")
	}
	s.counts = make([]count, shards)
	s.mask = shards - 1
	s.size = n
	per := n / uint64(shards)
	for i := range s.counts {
		s.counts[i].n.Store(per)
	}
	s.counts[0].n.Add(n - per*uint64(shards))
}

// Available returns the units not held by anyone: a snapshot, summed over
// the shards one by one in index order (so units taken from one shard and
// given back to a later one while it sums are seen given back, not held
// twice). It sums again if a steal ran meanwhile, since a
// steal's units are in neither shard while it moves them, and a sum taken
// then could be off by half a shard, not just by the calls in flight.
func (s *Sema) Available() uint64 {
	for {
		g := s.steals.Load()
		if s.stealing.Load() == 0 {
			var n uint64
			for i := range s.counts {
				n += s.counts[i].n.Load()
			}
			if s.stealing.Load() == 0 && s.steals.Load() == g {
				return n
			}
		}
		runtime.Gosched()
	}
}

// Queued reports whether any waiter is queued. It is a sequentially
// consistent load of the flag that Enqueue stores before it collects units,
// so a caller that sets units aside outside the semaphore can pair it with
// its own store, as Release does (see "Why a release is never lost").
func (s *Sema) Queued() bool { return s.queued.Load() != 0 }

// Waiting returns the number of queued waiters: a snapshot.
func (s *Sema) Waiting() int { return int(s.waiting.Load()) }

// OldestStart returns when the waiter at the head of the queue, the one
// that has waited longest, joined it, and false if nobody is queued. It
// takes mu only when Waiting says somebody is queued.
func (s *Sema) OldestStart() (time.Time, bool) {
	if s.waiting.Load() == 0 {
		return time.Time{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == nil {
		return time.Time{}, false
	}
	return s.head.start, true
}

// Peak returns the most units held at once (the size given to Init less
// the units available) among the samples the queue took: one each time
// it changed, under mu, after every Enqueue, grant, Abort and cancelled
// Wait. TryAcquire and Release outside the queue take no sample, so a
// peak reached and left with nobody queued is not seen; Observe records
// one a caller sampled itself. A sample sums the shards one by one, so
// units that a steal or a release in flight is moving may be counted as
// held: it is at most the size, and exact when no TryAcquire or Release
// runs meanwhile.
func (s *Sema) Peak() uint64 { return s.peak.Load() }

// Observe raises Peak to held if held is more.
func (s *Sema) Observe(held uint64) {
	for {
		v := s.peak.Load()
		if held <= v || s.peak.CompareAndSwap(v, held) {
			return
		}
	}
}

// sampleLocked records the units held now in peak. Called with mu held,
// on the slow path only.
func (s *Sema) sampleLocked() {
	var avail uint64
	for i := range s.counts {
		avail += s.counts[i].n.Load()
	}
	if avail < s.size {
		s.Observe(s.size - avail)
	}
}

// Waits returns how many waiters have queued, and their total time.
func (s *Sema) Waits() (uint64, time.Duration) {
	return s.waits.Load(), time.Duration(s.waitNs.Load())
}

// TryAcquire takes n units, from shard first, if they are available and
// nobody is queued.
func (s *Sema) TryAcquire(n uint64, shard int) bool {
	if s.queued.Load() != 0 {
		return false
	}
	c := &s.counts[shard&s.mask].n
	for {
		v := c.Load()
		if v < n {
			break
		}
		if c.CompareAndSwap(v, v-n) {
			return true
		}
	}
	if s.mask == 0 {
		return false
	}
	s.stealing.Inc()
	defer func() {
		s.steals.Inc()
		s.stealing.Dec()
	}()
	got := s.steal(n, shard)
	if got >= n {
		if got > n {
			s.Release(got-n, shard)
		}
		return true
	}
	if got > 0 {
		s.Release(got, shard)
	}
	return false
}

// steal takes at least n units, if the shards have them, and returns how
// many it took: from each other shard in turn, what is still missing or
// half of what the shard has, whichever is more, and then what is still
// missing from the caller's own shard. The surplus goes to the caller's
// shard, so that a caller whose shard keeps running dry (one that takes
// units where others give them back) comes back here once for many units,
// not once for each.
func (s *Sema) steal(n uint64, shard int) uint64 {
	var got uint64
	for i := 1; i <= s.mask && got < n; i++ {
		got += take(&s.counts[(shard+i)&s.mask].n, n-got, true)
	}
	if got < n {
		got += take(&s.counts[shard&s.mask].n, n-got, false)
	}
	return got
}

// collect takes up to n units from the shards, shard first, and returns
// how many it took.
func (s *Sema) collect(n uint64, shard int) uint64 {
	var got uint64
	for i := 0; i <= s.mask && got < n; i++ {
		got += take(&s.counts[(shard+i)&s.mask].n, n-got, false)
	}
	return got
}

// take takes from the count c up to need units, or, if half, half of what
// c has when that is more, and returns how many it took. Units leave a
// count only here, by CAS, so a count never goes below zero.
func take(c *atomic.Uint64, need uint64, half bool) uint64 {
	for {
		v := c.Load()
		k := need
		if half {
			k = max(k, v/2)
		}
		k = min(k, v)
		if k == 0 || c.CompareAndSwap(v, v-k) {
			return k
		}
	}
}

// Release returns n units to shard and wakes the queued waiters they
// satisfy.
func (s *Sema) Release(n uint64, shard int) {
	s.counts[shard&s.mask].n.Add(n)
	if s.queued.Load() == 0 {
		return
	}
	s.mu.Lock()
	s.grantLocked()
	s.mu.Unlock()
}

// Waiter is a place in the queue, from Enqueue until Wait returns.
type Waiter struct{ w *waiter }

// Enqueue joins the queue for n units without waiting; the caller must then
// call Wait exactly once. Splitting the two lets a caller join the queue
// while it still holds the lock that its Abort caller takes, so an Abort
// that comes after that lock is released always finds the waiter.
func (s *Sema) Enqueue(n uint64, owner any) Waiter {
	s.mu.Lock()
	w := s.spare
	if w != nil {
		s.spare = w.next
	} else {
		w = new(waiter)
	}
	w.need, w.got, w.owner, w.err = n, 0, owner, nil
	w.start = time.Now()
	w.state.Store(pending)
	s.pushLocked(w)
	s.grantLocked()
	s.mu.Unlock()
	return Waiter{w}
}

// Wait waits, in arrival order, for the units that Enqueue asked for. It
// returns ctx.Err() if ctx ends first, or the error given to Abort for the
// waiter's owner; in both cases the caller holds no units. If the grant and
// the cancellation race, the grant wins and Wait returns nil.
//
// The caller must make sure the units can ever be granted (n <= the size
// given to Init); otherwise Wait waits until ctx ends.
func (s *Sema) Wait(ctx context.Context, q Waiter) error {
	w := q.w
	for {
		seq := w.ev.Prepare()
		if w.state.Load() != pending {
			break
		}
		if err := w.ev.Wait(ctx, seq); err != nil {
			s.mu.Lock()
			if w.state.Load() == pending {
				s.abortLocked(w, err)
				s.grantLocked()
			}
			s.mu.Unlock()
			break
		}
	}

	s.mu.Lock()
	// granted and aborted are final, and both are stored under mu, so they
	// are stable here; the Wake that announced them ran under mu too, so
	// nobody touches w after we recycle it.
	var err error
	if w.state.Load() == aborted {
		err = w.err
	}
	s.waits.Inc()
	s.waitNs.Add(int64(time.Since(w.start)))
	w.owner, w.err = nil, nil
	w.next = s.spare
	s.spare = w
	s.mu.Unlock()
	return err
}

// Abort makes every queued waiter of owner return err from Wait. Those already granted
// keep their units.
func (s *Sema) Abort(owner any, err error) { s.AbortOver(owner, 0, err) }

// AbortOver is Abort for the queued waiters of owner that asked for more
// than max units only: those that can no longer be granted once the owner
// holds all but max of the units there are.
func (s *Sema) AbortOver(owner any, max uint64, err error) {
	s.mu.Lock()
	for w := s.head; w != nil; {
		next := w.next
		if w.owner == owner && w.need > max {
			s.abortLocked(w, err)
		}
		w = next
	}
	s.grantLocked()
	s.mu.Unlock()
}

// pushLocked appends w to the queue and sets queued.
func (s *Sema) pushLocked(w *waiter) {
	w.prev, w.next = s.tail, nil
	if s.tail != nil {
		s.tail.next = w
	} else {
		s.head = w
	}
	s.tail = w
	s.waiting.Inc()
	if s.queued.Load() == 0 {
		s.queued.Store(1)
	}
}

// unlinkLocked removes w from the queue.
func (s *Sema) unlinkLocked(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		s.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		s.tail = w.prev
	}
	w.prev, w.next = nil, nil
	s.waiting.Dec()
}

// abortLocked takes a pending w out of the queue, returns the units it had
// collected and wakes it with err. The caller runs grantLocked afterwards,
// so that those units and the place w held go to the waiters behind it.
func (s *Sema) abortLocked(w *waiter, err error) {
	s.unlinkLocked(w)
	if w.got > 0 {
		s.counts[0].n.Add(w.got)
		w.got = 0
	}
	w.err = err
	w.state.Store(aborted)
	w.ev.Wake()
}

// grantLocked hands units to queued waiters in order: the head collects
// units from the shards until it has its need, and is then granted and
// woken, and the next one becomes the head. It clears queued once the
// queue is empty.
func (s *Sema) grantLocked() {
	defer s.sampleLocked()
	for w := s.head; w != nil; w = s.head {
		w.got += s.collect(w.need-w.got, 0)
		if w.got < w.need {
			return
		}
		s.unlinkLocked(w)
		w.state.Store(granted)
		w.ev.Wake()
	}
	s.queued.Store(0)
}
