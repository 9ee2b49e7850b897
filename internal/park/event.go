// Package park parks goroutines the way a futex does: atomics first, a short
// bounded spin while the waker may be running on another P, and a sync.Cond
// only when the goroutine really has to sleep.
//
// Event is the "something changed" primitive; Sema builds a FIFO counting
// semaphore on it. Both are used on the slow path of the pool: a caller that
// does not have to wait touches them with at most one atomic load.
package park

import (
	"context"
	"runtime"
	"sync"

	"go.uber.org/atomic"
)

// Bits of Event.word. The rest of the word counts wakes (the "sequence").
const (
	hasWaiters  = 1 << 0 // somebody called Prepare since the last Wake
	hasSleepers = 1 << 1 // somebody sleeps in cond.Wait (set under mu)
	seqOne      = 1 << 2 // one wake
	flags       = hasWaiters | hasSleepers
)

// Event lets goroutines wait until another goroutine reports a change.
//
// The protocol is that of a futex word. A waiter announces itself with
// Prepare, which returns a snapshot of the word, then checks its own
// condition, and if the condition does not hold yet calls Wait with the
// snapshot. A waker first makes the condition true and then calls Wake.
// Wait returns once a Wake has happened after the Prepare.
//
// Why no wakeup is lost: Prepare sets hasWaiters with a read-modify-write
// before the waiter checks its condition; Wake loads the word after the
// condition was made true. All sync/atomic operations are sequentially
// consistent, so either the waiter sees the condition, or Wake sees
// hasWaiters and bumps the sequence, which Wait then sees. A waiter that
// must sleep sets hasSleepers in the same word, under mu, with a CAS that
// also checks the sequence is unchanged; Wake broadcasts under mu when it
// clears that bit, which it can only take once the sleeper is in cond.Wait.
//
// The payoff: Wake with nobody waiting is one atomic load, no write, so a
// busy pipe whose other end is running costs no cache-line ping-pong here.
//
// The zero Event is ready to use. An Event must not be copied after first use.
type Event struct {
	word atomic.Uint32
	mu   sync.Mutex
	cond sync.Cond // L is &mu, set lazily under mu
}

// Prepare announces that the caller is about to check a condition and,
// if it does not hold, to Wait. It returns the snapshot to pass to Wait.
// A Prepare that is not followed by a Wait costs the next Wake one atomic
// write, nothing more.
func (e *Event) Prepare() uint32 {
	for {
		v := e.word.Load()
		if v&hasWaiters != 0 || e.word.CompareAndSwap(v, v|hasWaiters) {
			return v &^ flags
		}
	}
}

// Wake reports a change to every goroutine that called Prepare before it.
func (e *Event) Wake() {
	v := e.word.Load()
	if v&hasWaiters == 0 {
		return
	}
	for !e.word.CompareAndSwap(v, v&^flags+seqOne) {
		v = e.word.Load()
	}
	if v&hasSleepers != 0 {
		e.mu.Lock()
		e.cond.Broadcast()
		e.mu.Unlock()
	}
}

// changed reports whether a Wake has happened since the snapshot seq.
func (e *Event) changed(seq uint32) bool { return e.word.Load()&^flags != seq }

// Wait blocks until a Wake after the Prepare that returned seq, or until ctx
// is done. It returns nil when woken, even if ctx is done by then too, and
// ctx.Err() when the context ended with no Wake. Callers re-check their
// condition after Wait, in a loop.
//
// A context that can never be done (Done() == nil, as for
// context.Background) costs no allocation; any other context costs one
// context.AfterFunc registration when the goroutine has to sleep.
func (e *Event) Wait(ctx context.Context, seq uint32) error {
	if e.changed(seq) || e.spin(seq) {
		return nil
	}
	done := ctx.Done()
	if done != nil {
		select {
		case <-done:
			return ctx.Err()
		default:
		}
		// The callback takes mu before broadcasting: the sleeper checks
		// ctx.Err under mu before every cond.Wait, so the broadcast
		// cannot fall between that check and the sleep.
		stop := context.AfterFunc(ctx, func() {
			e.mu.Lock()
			e.cond.Broadcast()
			e.mu.Unlock()
		})
		defer stop()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cond.L == nil {
		e.cond.L = &e.mu
	}
	for {
		v := e.word.Load()
		if v&^flags != seq {
			return nil
		}
		if done != nil {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if v&hasSleepers == 0 && !e.word.CompareAndSwap(v, v|hasSleepers) {
			continue // the word moved: look again
		}
		e.cond.Wait()
	}
}

// Spinning pays only when the waker can run at the same time, that is with
// more than one P; even then it is bounded, because an unbounded
// spin-with-yield burns a whole core that the waker, or any other
// goroutine, could have used: a waiter that finds no change after a few
// short rounds sleeps.
const (
	spinRounds = 4  // rounds of busy polling, as sync.Mutex does
	spinLoads  = 64 // atomic loads per round
	yields     = 2  // runtime.Gosched calls after the busy rounds
)

// spin polls the event word for a short while and reports whether it moved.
func (e *Event) spin(seq uint32) bool {
	if runtime.GOMAXPROCS(0) == 1 {
		return false
	}
	for r := 0; r < spinRounds; r++ {
		for i := 0; i < spinLoads; i++ {
			if e.changed(seq) {
				return true
			}
		}
	}
	for r := 0; r < yields; r++ {
		runtime.Gosched()
		if e.changed(seq) {
			return true
		}
	}
	return false
}
