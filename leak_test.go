package bytespool

import (
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// leakRecorder is an OnLeak that keeps every report.
type leakRecorder struct {
	mu    sync.Mutex
	leaks []Leak
}

func (r *leakRecorder) onLeak(l Leak) {
	r.mu.Lock()
	r.leaks = append(r.leaks, l)
	r.mu.Unlock()
}

func (r *leakRecorder) got() []Leak {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Leak(nil), r.leaks...)
}

// leakPool is a pool of 16 blocks of 1 KiB that reports leaks to rec.
func leakPool(t testing.TB, debug bool, onLeak func(Leak)) *BytesPool {
	t.Helper()
	p, err := New(Config{MaxMemory: 16 << 10, BlockSize: 1024, Debug: debug, OnLeak: onLeak})
	require.NoError(t, err)
	checkNoLeak(t, p)
	return p
}

// gcUntil runs the garbage collector until cond holds, failing after
// waitTimeout.
func gcUntil(t testing.TB, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			require.Fail(t, "not within "+waitTimeout.String()+": "+msg)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// forgetBytesForLeakTest makes a Bytes of 1500 bytes and drops it.
//
//go:noinline
func forgetBytesForLeakTest(p *BytesPool) {
	b := p.NewBytes(0)
	if _, err := b.Write(fill(1500, 7)); err != nil {
		panic(err)
	}
}

// forgetPipeForLeakTest makes a pipe with 2500 bytes buffered and drops
// both ends.
//
//go:noinline
func forgetPipeForLeakTest(p *BytesPool) {
	_, w := p.NewPipe(0)
	if _, err := w.Write(fill(2500, 8)); err != nil {
		panic(err)
	}
}

// TestLeakBytes: a forgotten Bytes is reported once, with its blocks and
// bytes, and in Debug mode with the function that made it.
func TestLeakBytes(t *testing.T) {
	for _, debug := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "debug"}[debug], func(t *testing.T) {
			var rec leakRecorder
			pool := leakPool(t, debug, rec.onLeak)
			forgetBytesForLeakTest(pool)
			require.Equal(t, 2, pool.Stats().BlocksInUse)
			gcUntil(t, func() bool { return len(rec.got()) > 0 }, "OnLeak must report the forgotten Bytes")
			leaks := rec.got()
			require.Len(t, leaks, 1)
			l := leaks[0]
			require.Equal(t, 2, l.Blocks)
			require.Equal(t, 1500, l.Bytes)
			require.False(t, l.Pipe)
			if debug {
				require.Contains(t, l.Made, "bytespool.forgetBytesForLeakTest\n\t")
				require.Contains(t, l.Made, "leak_test.go:")
			} else {
				require.Empty(t, l.Made)
			}
			s := pool.Stats()
			require.Equal(t, uint64(1), s.Leaks)
			require.Equal(t, 0, s.BlocksInUse)
		})
	}
}

// TestLeakPipe: a pipe whose two ends are dropped is reported, with the
// blocks it held.
func TestLeakPipe(t *testing.T) {
	var rec leakRecorder
	pool := leakPool(t, true, rec.onLeak)
	forgetPipeForLeakTest(pool)
	require.Equal(t, 3, pool.Stats().BlocksInUse)
	gcUntil(t, func() bool { return len(rec.got()) > 0 }, "OnLeak must report the forgotten pipe")
	leaks := rec.got()
	require.Len(t, leaks, 1)
	l := leaks[0]
	require.Equal(t, 3, l.Blocks)
	require.Equal(t, 2500, l.Bytes)
	require.True(t, l.Pipe)
	require.Contains(t, l.Made, "bytespool.forgetPipeForLeakTest\n\t")
	require.Equal(t, uint64(1), pool.Stats().Leaks)
	require.Equal(t, 0, pool.Stats().BlocksInUse)
}

// TestLeakLeaksCountedWithoutOnLeak: Stats.Leaks counts leaks when OnLeak
// is nil.
func TestLeakLeaksCountedWithoutOnLeak(t *testing.T) {
	pool := leakPool(t, false, nil)
	forgetBytesForLeakTest(pool)
	forgetPipeForLeakTest(pool)
	gcUntil(t, func() bool { return pool.Stats().Leaks == 2 }, "Stats.Leaks must count both")
	require.Equal(t, 0, pool.Stats().BlocksInUse)
}

// closeWriterOnly makes a pipe, writes to it, closes the writer and reads
// everything, but never closes the reader, as io.Pipe users often do.
//
//go:noinline
func closeWriterOnly(t testing.TB, p *BytesPool) {
	r, w := p.NewPipe(0)
	go func() {
		_, _ = w.Write(fill(3000, 1))
		_ = w.Close()
	}()
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Len(t, got, 3000)
}

// TestLeakNeverForFreed: Bytes that were freed, pipes whose reader was
// closed, and pipes drained after the writer's Close are never reported,
// however many collections run; a forgotten Bytes made after them is, so
// the cleanups did run.
func TestLeakNeverForFreed(t *testing.T) {
	for _, debug := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "debug"}[debug], func(t *testing.T) {
			var rec leakRecorder
			pool := leakPool(t, debug, rec.onLeak)
			for i := range 200 {
				b := pool.NewBytes(0)
				writeAll(t, b, fill(100+i, byte(i)))
				if i%2 == 0 {
					b.Free()
				} else {
					require.NoError(t, b.Close())
				}
			}
			for range 20 {
				r, w := pool.NewPipe(0)
				_, err := w.Write(fill(1500, 2))
				require.NoError(t, err)
				require.NoError(t, r.Close())
				closeWriterOnly(t, pool)
			}
			for range 5 {
				runtime.GC()
			}
			forgetBytesForLeakTest(pool)
			gcUntil(t, func() bool { return len(rec.got()) > 0 }, "the forgotten Bytes must be reported")
			for range 5 {
				runtime.GC()
				time.Sleep(time.Millisecond)
			}
			leaks := rec.got()
			require.Len(t, leaks, 1, "only the forgotten Bytes: %+v", leaks)
			require.Equal(t, 1500, leaks[0].Bytes)
			require.Equal(t, uint64(1), pool.Stats().Leaks)
		})
	}
}

// TestLeakOnLeakOutsideLocks: OnLeak runs with the blocks already back and
// no lock held: it may call Stats and use the pool. Calls never overlap.
func TestLeakOnLeakOutsideLocks(t *testing.T) {
	const n = 7 // 2 blocks each, and the held one: the pool has 16
	var (
		pool              *BytesPool
		mu                sync.Mutex
		calls, inUse, max int
		inFlight          int
	)
	pool = leakPool(t, false, func(l Leak) {
		mu.Lock()
		inFlight++
		if inFlight > max {
			max = inFlight
		}
		mu.Unlock()
		b := pool.NewBytes(0) // the pool is usable from OnLeak
		_, _ = b.Write([]byte("x"))
		b.Free()
		s := pool.Stats()
		time.Sleep(100 * time.Microsecond) // give another report the chance to overlap
		mu.Lock()
		inFlight--
		if calls++; calls == n {
			inUse = s.BlocksInUse
		}
		mu.Unlock()
	})
	held := pool.NewBytes(0)
	defer held.Free()
	writeAll(t, held, []byte("held"))
	for range n {
		forgetBytesForLeakTest(pool)
	}
	gcUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return calls == n
	}, "every forgotten Bytes must be reported")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, max, "OnLeak calls must not overlap")
	require.Equal(t, n, calls)
	require.Equal(t, uint64(n), pool.Stats().Leaks)
	// The last report comes after every reclaim, its own included: only
	// the held Bytes' block is in use.
	require.Equal(t, 1, inUse, "a report comes after its blocks went back")
}
