package bytespool

// This file holds the pressure callbacks (Config.HighWater, LowWater and
// OnPressure): an exact count of the blocks in use, kept only by pools
// that set HighWater, and the machinery that calls OnPressure with no lock
// held, one call at a time.

import (
	"fmt"

	"go.uber.org/atomic"
)

// pressure watches a pool's blocks in use against its marks. The allocator
// counts every reservation a holder takes or gives back in inUse (see
// allocator.count); a change that crosses a mark sets due. The goroutine
// that made it calls run once it has released its locks, just before its
// method returns (see BytesPool.pressed).
//
// run calls OnPressure one call at a time, from whichever goroutine gets
// to busy first: a goroutine that finds a call running does not wait for
// it; it sets busy to 2, and the running goroutine, which can leave only
// by moving busy from 1 to 0, looks at the count again. So a crossing is
// never left unreported, and OnPressure may free or write to Bytes (and
// cross a mark itself) without deadlocking: it only asks its own goroutine
// to look again once it returns. Which call comes next is decided by the
// count at the moment of looking, against the last call made (on), so the
// calls alternate, true first.
type pressure struct {
	high, low int64 // in blocks: high reached at high, low at low or below
	fn        func(high bool)

	inUse atomic.Int64
	due   atomic.Bool
	busy  atomic.Int32 // 0 idle, 1 a goroutine is in run, 2 and it must look again
	on    bool         // the last call was fn(true); only the goroutine in run touches it
}

// newPressure returns the pressure of a pool of block size bs for cfg, or
// nil if cfg sets no HighWater. cfg is valid (see checkPressure).
func newPressure(cfg Config, bs int) *pressure {
	if cfg.HighWater == 0 {
		return nil
	}
	return &pressure{
		high: int64((cfg.HighWater + bs - 1) / bs),
		low:  int64(cfg.LowWater / bs),
		fn:   cfg.OnPressure,
	}
}

// checkPressure returns what is wrong with cfg's marks, or "".
func checkPressure(cfg Config) string {
	switch {
	case cfg.HighWater < 0 || cfg.LowWater < 0:
		return fmt.Sprintf("HighWater %d and LowWater %d must not be negative", cfg.HighWater, cfg.LowWater)
	case cfg.HighWater == 0 && (cfg.LowWater != 0 || cfg.OnPressure != nil):
		return "LowWater and OnPressure need HighWater"
	case cfg.HighWater == 0:
		return ""
	case cfg.OnPressure == nil:
		return "HighWater needs OnPressure"
	case cfg.LowWater >= cfg.HighWater:
		return fmt.Sprintf("LowWater %d must be below HighWater %d", cfg.LowWater, cfg.HighWater)
	case cfg.MaxMemory > 0 && cfg.HighWater > cfg.MaxMemory:
		return fmt.Sprintf("HighWater %d is above MaxMemory %d", cfg.HighWater, cfg.MaxMemory)
	}
	return ""
}

// add counts n more blocks in use (n < 0: fewer) and notes a crossing.
func (ps *pressure) add(n int) {
	v := ps.inUse.Add(int64(n))
	old := v - int64(n)
	if (old < ps.high && v >= ps.high) || (old > ps.low && v <= ps.low) {
		ps.due.Store(true)
	}
}

// run makes the calls the count is due, unless a goroutine is making them
// already, which it then asks to look again.
func (ps *pressure) run() {
	for {
		if !ps.busy.CompareAndSwap(0, 1) {
			if ps.busy.CompareAndSwap(1, 2) || ps.busy.Load() == 2 {
				return // the goroutine in run looks again before it leaves
			}
			continue // it left meanwhile
		}
		for {
			ps.due.Store(false)
			for {
				v := ps.inUse.Load()
				switch {
				case !ps.on && v >= ps.high:
					ps.on = true
					ps.call(true)
					continue
				case ps.on && v <= ps.low:
					ps.on = false
					ps.call(false)
					continue
				}
				break
			}
			if ps.busy.CompareAndSwap(1, 0) {
				return
			}
			ps.busy.Store(1) // asked to look again
		}
	}
}

// call calls fn; if fn panics, the next crossing's goroutine may run.
func (ps *pressure) call(high bool) {
	ok := false
	defer func() {
		if !ok {
			ps.busy.Store(0)
		}
	}()
	ps.fn(high)
	ok = true
}

// pressed makes the pressure calls that a method of a Bytes or pipe of p
// made due, once it holds no lock. p may be nil (a Bytes found freed).
//
// It is on the path of every Write, Read and Free, so it stays small enough
// to inline: a pool without HighWater pays one load and a nil check.
func (p *BytesPool) pressed() {
	if p != nil && p.press != nil {
		p.press.runIfDue()
	}
}

// runIfDue runs the pressure calls if a crossing made them due. It is kept
// out of line so that pressed stays small enough to inline.
//
//go:noinline
func (ps *pressure) runIfDue() {
	if ps.due.Load() {
		ps.run()
	}
}
