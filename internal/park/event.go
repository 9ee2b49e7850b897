// Package park parks goroutines the way a futex does: atomics first, a short
// bounded spin while the waker may be running on another P, and a sync.Cond
// only when the goroutine really has to sleep.
//
// Event is the one-shot "something changed" primitive; Sema builds a FIFO
// counting semaphore on it. Both are used on the slow path of the pool: a
// caller that does not have to wait never touches them beyond one atomic.
package park

import (
	"context"
	"runtime"
	"sync"

	"go.uber.org/atomic"
)

// Event lets goroutines sleep until another goroutine reports a change.
//
// The protocol is that of a futex word. A waiter takes a snapshot with Seq,
// checks its own condition, and if the condition does not hold yet calls
// Wait with the snapshot. A waker first makes the condition true and then
// calls Wake. Wait returns once the word has moved past the snapshot, so a
// Wake that happens anywhere after Seq is never lost.
//
// Why no wakeup is lost: Wake does seq.Add then sleepers.Load; a sleeping
// waiter does sleepers.Add then seq.Load, the latter under mu. All sync/atomic
// operations are sequentially consistent, so at least one of the two loads
// observes the other side's add: either the waiter sees the new seq and does
// not sleep, or Wake sees a sleeper and broadcasts under mu, which it can only
// take once the waiter is inside cond.Wait.
//
// The zero Event is ready to use. An Event must not be copied after first use.
type Event struct {
	seq      atomic.Uint32 // bumped by every Wake
	sleepers atomic.Int32  // goroutines inside the cond.Wait loop
	mu       sync.Mutex
	cond     sync.Cond // L is &mu, set lazily under mu
}

// Seq returns the current value of the event word. Take it before checking
// the condition that Wait is meant to wait for.
func (e *Event) Seq() uint32 { return e.seq.Load() }

// Wake reports a change to every goroutine waiting on a snapshot older than
// now. It costs one atomic add and one load when nobody sleeps.
func (e *Event) Wake() {
	e.seq.Inc()
	if e.sleepers.Load() == 0 {
		return
	}
	e.mu.Lock()
	if e.cond.L != nil {
		e.cond.Broadcast()
	}
	e.mu.Unlock()
}

// Wait blocks until the event word differs from seq, or ctx is done. It
// returns nil when woken and ctx.Err() when the context ended first. Wait may
// also return nil spuriously; callers re-check their condition in a loop.
//
// A context that can never be done (Done() == nil, as for
// context.Background) costs no allocation; any other context costs one
// context.AfterFunc registration when the goroutine has to sleep.
func (e *Event) Wait(ctx context.Context, seq uint32) error {
	if e.spin(seq) {
		return nil
	}
	done := ctx.Done()
	if done != nil {
		select {
		case <-done:
			return ctx.Err()
		default:
		}
		// The callback takes mu before broadcasting: the waiter checks
		// ctx.Err under mu before every cond.Wait, so the broadcast cannot
		// fall between that check and the sleep.
		stop := context.AfterFunc(ctx, func() {
			e.mu.Lock()
			e.cond.Broadcast()
			e.mu.Unlock()
		})
		defer stop()
	}
	e.mu.Lock()
	if e.cond.L == nil {
		e.cond.L = &e.mu
	}
	e.sleepers.Inc()
	var err error
	for e.seq.Load() == seq {
		if done != nil {
			if err = ctx.Err(); err != nil {
				break
			}
		}
		e.cond.Wait()
	}
	e.sleepers.Dec()
	e.mu.Unlock()
	return err
}

// Spinning pays only when the waker can run at the same time, that is with
// more than one P; even then it is bounded, because an unbounded
// spin-with-yield burns a whole core (see DESIGN-NOTES, "Parking").
const (
	spinRounds = 4  // rounds of busy polling, as sync.Mutex does
	spinLoads  = 64 // atomic loads per round
	yields     = 2  // runtime.Gosched calls after the busy rounds (~190 ns each)
)

// spin polls the event word for a short while and reports whether it moved.
func (e *Event) spin(seq uint32) bool {
	if runtime.GOMAXPROCS(0) == 1 {
		return false
	}
	for r := 0; r < spinRounds; r++ {
		for i := 0; i < spinLoads; i++ {
			if e.seq.Load() != seq {
				return true
			}
		}
	}
	for r := 0; r < yields; r++ {
		runtime.Gosched()
		if e.seq.Load() != seq {
			return true
		}
	}
	return false
}
