package bench

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCost measures the primitives that the pool's fast paths are made
// of, on this machine, so that a target can be checked against what its
// operations must cost at the least:
//
//   - load, cas, add, swap: one atomic operation on a word no other core
//     touches (on amd64 an atomic store is an XCHG, as costly as a CAS);
//   - mutex: one sync.Mutex Lock and Unlock, uncontended;
//   - syncpool: one sync.Pool Get and Put, which touch only the P's own
//     cache;
//   - handoff: one cache-line transfer between two goroutines that take
//     turns incrementing a shared word, on two Ps (half a round trip);
//   - gaps: one read of the clock in a tight loop, with a second goroutine
//     copying beside it as in BenchmarkLatency. Whenever two reads are more
//     than 1µs apart, the goroutine was held up by something outside the
//     program (an interrupt, the hypervisor, the other core's work); it
//     reports how often that happened ("us-between-gaps") and the median
//     length of a gap ("gap-p50-ns"). An op of t ns is hit by a gap with a
//     chance of about t/us-between-gaps, which bounds what Latency's
//     p99.9/p50 can be on the machine.
//
// It has no peer= part, so bench/cmd/ratios leaves it out.
func BenchmarkCost(b *testing.B) {
	// Each word on its own cache line, away from whatever the
	// allocator puts next to it.
	type padded struct {
		_ [64]byte
		v atomic.Uint64
		_ [56]byte
	}
	b.Run("op=load", func(b *testing.B) {
		w := new(padded)
		var s uint64
		for range b.N {
			s += w.v.Load()
		}
		sink.Store(s)
	})
	b.Run("op=cas", func(b *testing.B) {
		w := new(padded)
		for i := range b.N {
			w.v.CompareAndSwap(uint64(i), uint64(i+1))
		}
	})
	b.Run("op=add", func(b *testing.B) {
		w := new(padded)
		for range b.N {
			w.v.Add(1)
		}
	})
	b.Run("op=swap", func(b *testing.B) {
		w := new(padded)
		for i := range b.N {
			w.v.Store(uint64(i))
		}
	})
	b.Run("op=mutex", func(b *testing.B) {
		var mu sync.Mutex
		for range b.N {
			mu.Lock()
			//lint:ignore SA2001 the empty critical section is what is measured
			mu.Unlock()
		}
	})
	b.Run("op=syncpool", func(b *testing.B) {
		pool := newBlockPool()
		pool.Put(pool.Get())
		for range b.N {
			pool.Put(pool.Get())
		}
	})
	b.Run("op=handoff", func(b *testing.B) {
		if runtime.GOMAXPROCS(0) < 2 {
			b.Skip("needs two Ps")
		}
		// The two goroutines increment the word in turn: the helper
		// turns odd values even and the benchmark goroutine even ones
		// odd, so each increment pulls the line from the other core.
		w := new(padded)
		n := uint64(b.N)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for v := uint64(1); v < 2*n; v += 2 {
				for w.v.Load() != v {
				}
				w.v.Store(v + 1)
			}
		}()
		b.ResetTimer()
		for v := uint64(0); v < 2*n; v += 2 {
			for w.v.Load() != v {
			}
			w.v.Store(v + 1)
		}
		<-done
		// Two transfers per iteration of each side's loop: report one.
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*n), "ns/transfer")
	})
	b.Run("op=gaps", gapProbe)
}

// gapProbe is op=gaps of BenchmarkCost.
func gapProbe(b *testing.B) {
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		src, dst := payload(1<<10, 1), make([]byte, 1<<10)
		for !stop.Load() {
			copy(dst, src)
		}
	}()
	var gaps []time.Duration
	b.ResetTimer()
	last := time.Now()
	for range b.N {
		now := time.Now()
		if d := now.Sub(last); d > time.Microsecond {
			gaps = append(gaps, d)
		}
		last = now
	}
	b.StopTimer()
	stop.Store(true)
	<-done
	if len(gaps) == 0 {
		return
	}
	slices.Sort(gaps)
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(len(gaps)), "us-between-gaps")
	b.ReportMetric(float64(percentile(gaps, 0.5)), "gap-p50-ns")
}

// sink keeps op=load's sum alive.
var sink atomic.Uint64
