package bytespool

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitTimeout bounds every "this must eventually happen" wait. It is far
// longer than any correct run needs, even under the race detector on a
// loaded machine; it only turns a hang into a failure.
const waitTimeout = 20 * time.Second

// settle is how long a goroutine gets to reach a blocking point before the
// test checks (with Stats().Waiters) that it really is parked there.
const settle = 5 * time.Millisecond

// checkNoLeak registers a check, run when the test ends (after its defers),
// that p has no block in use and no goroutine parked.
func checkNoLeak(t testing.TB, p *BytesPool) {
	t.Helper()
	t.Cleanup(func() {
		s := p.Stats()
		assert.Equal(t, 0, s.BlocksInUse, "blocks still in use when the test ended: %+v", s)
		assert.Equal(t, 0, s.Waiters, "goroutines still parked when the test ended: %+v", s)
	})
}

// testPool is NewBytesPool plus checkNoLeak.
func testPool(t testing.TB, maxMemory, blockSize int) *BytesPool {
	t.Helper()
	p := NewBytesPool(maxMemory, blockSize)
	checkNoLeak(t, p)
	return p
}

// within runs f and fails the test if f does not return within waitTimeout.
// It is for calls that must not block: if f hangs, the test fails instead
// of hanging (f keeps running in its goroutine).
func within(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not return within %v", what, waitTimeout)
	}
}

// result is what a write or read running in another goroutine returned.
type result struct {
	n   int64
	err error
}

// async runs f in a goroutine and returns a channel that receives its
// result once, with n as an int64.
func async[N int | int64](f func() (N, error)) <-chan result {
	ch := make(chan result, 1)
	go func() {
		n, err := f()
		ch <- result{int64(n), err}
	}()
	return ch
}

// asyncWrite starts b.Write(p) in a goroutine.
func asyncWrite(b *Bytes, p []byte) <-chan result {
	return async(func() (int, error) { return b.Write(p) })
}

// await waits for the result of an async call, failing after waitTimeout.
func await(t testing.TB, what string, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not return within %v", what, waitTimeout)
		return result{}
	}
}

// stillRunning reports whether the async call has not returned yet, without
// consuming its result when it has not.
func stillRunning(ch <-chan result) bool { return len(ch) == 0 }

// waitWaiters waits until p reports exactly n parked goroutines. Waiters
// counts a goroutine from the moment it is queued for blocks, so once this
// returns the goroutine cannot proceed without a grant.
func waitWaiters(t testing.TB, p *BytesPool, n int) {
	t.Helper()
	eventually(t, func() bool { return p.Stats().Waiters == n }, "want %d parked goroutines", n)
}

// eventually polls cond, briefly at first and then every 100µs, and fails
// the test if cond is still false after waitTimeout.
func eventually(t testing.TB, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for i := 0; !cond(); i++ {
		if time.Now().After(deadline) {
			require.Fail(t, "condition not met within "+waitTimeout.String(), msgAndArgs...)
		}
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// parkedWrite starts b.Write(data), checks that it parks (p then reports
// waiters parked goroutines), and returns its result channel.
func parkedWrite(t testing.TB, p *BytesPool, b *Bytes, data []byte, waiters int) <-chan result {
	t.Helper()
	ch := asyncWrite(b, data)
	time.Sleep(settle)
	waitWaiters(t, p, waiters)
	require.True(t, stillRunning(ch), "the write returned instead of waiting")
	return ch
}

// fill returns n bytes of a pattern that depends on seed, so that data from
// different writers and offsets differ.
func fill(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7+i/251)
	}
	return p
}

// holdBlocks makes k Bytes of one full block each, so a test can free the
// pool's blocks one at a time.
func holdBlocks(t testing.TB, p *BytesPool, k int) []*Bytes {
	t.Helper()
	bs := p.Stats().BlockSize
	hs := make([]*Bytes, k)
	for i := range hs {
		hs[i] = p.NewBytes(0)
		writeAll(t, hs[i], fill(bs, byte(i)))
	}
	return hs
}

// writeAll writes data to b and checks that all of it went in.
func writeAll(t testing.TB, b *Bytes, data []byte) {
	t.Helper()
	n, err := b.Write(data)
	require.NoError(t, err)
	require.Equal(t, len(data), n)
}

// readAll drains b, checking that it ends with io.EOF and nothing else.
func readAll(t testing.TB, b *Bytes) []byte {
	t.Helper()
	got, err := io.ReadAll(b)
	require.NoError(t, err)
	return got
}

// noLen hides the Len method of a reader, so ReadFrom cannot know it is at
// its end without reading it.
type noLen struct{ r io.Reader }

func (r noLen) Read(p []byte) (int, error) { return r.r.Read(p) }

// errWriter takes up to k bytes in total, then fails with err.
type errWriter struct {
	buf bytes.Buffer
	k   int
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	if room := w.k - w.buf.Len(); len(p) > room {
		w.buf.Write(p[:room])
		return room, w.err
	}
	return w.buf.Write(p)
}

// shortWriter takes at most k bytes per call and never reports an error:
// it breaks the io.Writer contract the way WriteTo must detect.
type shortWriter struct {
	buf bytes.Buffer
	k   int
}

func (w *shortWriter) Write(p []byte) (int, error) {
	if len(p) > w.k {
		p = p[:w.k]
	}
	return w.buf.Write(p)
}

func (w *shortWriter) Bytes() []byte { return nonNil(w.buf.Bytes()) }

// stingyWriter takes k bytes in all, then returns 0, nil: short writes
// without an error.
type stingyWriter struct {
	buf bytes.Buffer
	k   int
}

func (w *stingyWriter) Write(p []byte) (int, error) {
	if room := w.k - w.buf.Len(); len(p) > room {
		p = p[:room]
	}
	return w.buf.Write(p)
}

func (w *stingyWriter) Bytes() []byte { return nonNil(w.buf.Bytes()) }

var errTest = errors.New("test: injected failure")

// requireAllFree checks, when nothing holds a block of p, that every block
// carved from its arena sits in one of its free rings, hot slots or
// stripes, once: no run was lost or queued twice. It empties the rings.
func requireAllFree(t testing.TB, p *BytesPool) {
	t.Helper()
	carved := p.arena.Carved()
	seen := make([]bool, carved)
	free := 0
	for s := range p.shardMask + 1 {
		if v := p.local[s].hot.Load(); v != 0 {
			i := v - 1
			require.Less(t, int(i), carved, "a hot block that was never carved")
			require.False(t, seen[i], "block %d is free twice", i)
			seen[i] = true
			free++
		}
		lo, hi := unpackStripe(p.local[s].stripe.Load())
		for i := lo; i < hi; i++ {
			require.Less(t, int(i), carved, "a block in a stripe that was never carved")
			require.False(t, seen[i], "block %d is free twice", i)
			seen[i] = true
			free++
		}
	}
	for k := range int(p.nslabs.Load()) {
		sl := p.slabs[k].Load()
		for s := range sl.rings {
			for {
				var dst [16]uint32
				n := sl.take(s, dst[:])
				for _, i := range dst[:n] {
					require.Less(t, int(i), carved, "a free block that was never carved")
					require.False(t, seen[i], "block %d is free twice", i)
					seen[i] = true
				}
				free += n
				if n < len(dst) {
					break
				}
			}
		}
	}
	require.Equal(t, carved, free, "blocks carved and blocks free")
}
