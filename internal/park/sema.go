package park

import (
	"context"
	"sync"
	"time"

	"go.uber.org/atomic"
)

// waitBit marks Sema.state while the wait queue is non-empty. The low 63
// bits count available units.
const waitBit = 1 << 63

// Sema is a counting semaphore whose waiters are served in arrival order.
//
// Fast path: with nobody queued, TryAcquire takes n units with one CAS on
// state and Release returns them with one Add. The slow path is a FIFO queue
// of waiter nodes under mu; each node sleeps on its own Event, so a release
// wakes exactly the waiters it satisfies and nobody else.
//
// Fairness: while the queue is non-empty, waitBit is set in state and
// TryAcquire fails, so a newcomer queues behind the waiters instead of taking
// units they are waiting for. Units are handed to waiters strictly in queue
// order: a large request at the head holds back smaller ones behind it (as
// golang.org/x/sync/semaphore does), so it cannot be starved.
//
// Why a release is never lost: a queuing Acquire sets waitBit and then tries
// to grant, both under mu; Release adds its units and then looks at waitBit.
// If Release's Add comes first, the grant under mu sees the units; otherwise
// Release sees waitBit and grants under mu itself. Units only leave state by
// CAS, either on the fast path (waitBit clear) or under mu (grantLocked), so
// a grant never hands out units that are not there.
//
// A waiter that gives up (its context ends, or Abort names its owner) leaves
// the queue under mu and then runs grantLocked again, so the waiters behind a
// cancelled head are not held back by it.
type Sema struct {
	_     [64]byte // keep state off the cache line of whatever precedes the Sema
	state atomic.Uint64
	_     [56]byte // and off the line of the slow-path fields below

	waiting atomic.Int32 // nodes in the queue, for Stats
	waits   atomic.Uint64
	waitNs  atomic.Int64

	mu         sync.Mutex
	head, tail *waiter // the FIFO queue, guarded by mu
	spare      *waiter // recycled nodes (a stack through next), guarded by mu
}

// waiter is one queued Acquire. Nodes are recycled, so a steady state of
// blocking writers allocates nothing.
type waiter struct {
	ev    Event
	state atomic.Uint32 // pending, granted or aborted; written under Sema.mu
	need  uint64
	owner any   // what Abort matches against
	err   error // why the wait was aborted
	start time.Time

	prev, next *waiter
}

const (
	pending = iota
	granted
	aborted
)

// Init sets the number of available units. It must be called before any
// other method, and at most once.
func (s *Sema) Init(n uint64) {
	if n >= waitBit {
		panic("park: semaphore size out of range")
	}
	s.state.Store(n)
}

// Available returns the units not held by anyone: a snapshot.
func (s *Sema) Available() uint64 { return s.state.Load() &^ waitBit }

// Waiting returns the number of queued Acquire calls: a snapshot.
func (s *Sema) Waiting() int { return int(s.waiting.Load()) }

// Waits returns how many Acquire calls had to queue, and their total time.
func (s *Sema) Waits() (uint64, time.Duration) {
	return s.waits.Load(), time.Duration(s.waitNs.Load())
}

// TryAcquire takes n units if they are available and nobody is queued.
func (s *Sema) TryAcquire(n uint64) bool {
	for {
		v := s.state.Load()
		if v&waitBit != 0 || v < n {
			return false
		}
		if s.state.CompareAndSwap(v, v-n) {
			return true
		}
	}
}

// Release returns n units and wakes the queued waiters they satisfy.
func (s *Sema) Release(n uint64) {
	if s.state.Add(n)&waitBit == 0 {
		return
	}
	s.mu.Lock()
	s.grantLocked()
	s.mu.Unlock()
}

// Acquire takes n units, waiting in arrival order until they are available.
// It returns ctx.Err() if ctx ends first, or the error given to Abort for
// owner; in both cases it holds no units. If the grant and the cancellation
// race, the grant wins and Acquire returns nil.
//
// The caller must make sure n can ever be satisfied (n <= the size given to
// Init); otherwise Acquire waits until ctx ends.
func (s *Sema) Acquire(ctx context.Context, n uint64, owner any) error {
	if s.TryAcquire(n) {
		return nil
	}
	return s.Wait(ctx, s.Enqueue(n, owner))
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
	w.need, w.owner, w.err = n, owner, nil
	w.start = time.Now()
	w.state.Store(pending)
	s.pushLocked(w)
	s.grantLocked()
	s.mu.Unlock()
	return Waiter{w}
}

// Wait waits for the units that Enqueue asked for, as Acquire does.
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

// Abort makes every queued Acquire of owner return err. Those already granted
// keep their units.
func (s *Sema) Abort(owner any, err error) {
	s.mu.Lock()
	for w := s.head; w != nil; {
		next := w.next
		if w.owner == owner {
			s.abortLocked(w, err)
		}
		w = next
	}
	s.grantLocked()
	s.mu.Unlock()
}

// pushLocked appends w to the queue and sets waitBit.
func (s *Sema) pushLocked(w *waiter) {
	w.prev, w.next = s.tail, nil
	if s.tail != nil {
		s.tail.next = w
	} else {
		s.head = w
	}
	s.tail = w
	s.waiting.Inc()
	for {
		v := s.state.Load()
		if v&waitBit != 0 || s.state.CompareAndSwap(v, v|waitBit) {
			return
		}
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

// abortLocked takes a pending w out of the queue and wakes it with err.
func (s *Sema) abortLocked(w *waiter, err error) {
	s.unlinkLocked(w)
	w.err = err
	w.state.Store(aborted)
	w.ev.Wake()
}

// grantLocked hands units to queued waiters in order, for as long as the
// head's need is met, and clears waitBit once the queue is empty.
func (s *Sema) grantLocked() {
	for w := s.head; w != nil; w = s.head {
		v := s.state.Load()
		if v&^waitBit < w.need {
			return
		}
		// Only Release's Add can race with this CAS (waitBit keeps the
		// fast path out), so retrying converges.
		if !s.state.CompareAndSwap(v, v-w.need) {
			continue
		}
		s.unlinkLocked(w)
		w.state.Store(granted)
		w.ev.Wake()
	}
	for {
		v := s.state.Load()
		if v&waitBit == 0 || s.state.CompareAndSwap(v, v&^waitBit) {
			return
		}
	}
}
