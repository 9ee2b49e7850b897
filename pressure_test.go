package bytespool

import (
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPressureConfig(t *testing.T) {
	f := func(bool) {}
	for _, cfg := range []Config{
		{MaxMemory: 8 * kb, BlockSize: kb, HighWater: -1, OnPressure: f},
		{MaxMemory: 8 * kb, BlockSize: kb, HighWater: 4 * kb, LowWater: -1, OnPressure: f},
		{MaxMemory: 8 * kb, BlockSize: kb, HighWater: 4 * kb, LowWater: 4 * kb, OnPressure: f},
		{MaxMemory: 8 * kb, BlockSize: kb, HighWater: 4 * kb, LowWater: 5 * kb, OnPressure: f},
		{MaxMemory: 8 * kb, BlockSize: kb, HighWater: 9 * kb, OnPressure: f},
		{MaxMemory: 8 * kb, BlockSize: kb, HighWater: 4 * kb},
		{MaxMemory: 8 * kb, BlockSize: kb, LowWater: kb},
		{MaxMemory: 8 * kb, BlockSize: kb, OnPressure: f},
	} {
		_, err := New(cfg)
		require.ErrorIs(t, err, ErrInvalidConfig, "%+v", cfg)
	}
	for _, cfg := range []Config{
		{MaxMemory: 8 * kb, BlockSize: kb, HighWater: 8 * kb, LowWater: 0, OnPressure: f},
		{BlockSize: kb, HighWater: 1 << 40, LowWater: 1, OnPressure: f}, // unlimited pool: any HighWater
		{MaxMemory: 8 * kb, BlockSize: kb},
	} {
		_, err := New(cfg)
		require.NoError(t, err, "%+v", cfg)
	}
}

// pressureRecorder records OnPressure calls and checks that they never
// overlap and alternate, true first.
type pressureRecorder struct {
	t       testing.TB
	mu      sync.Mutex
	calls   []bool
	running atomic.Int32
	then    func(high bool) // called inside OnPressure, if set
}

func (r *pressureRecorder) on(high bool) {
	if !assert.Equal(r.t, int32(1), r.running.Add(1), "OnPressure calls overlap") {
		return
	}
	r.mu.Lock()
	want := len(r.calls)%2 == 0 // true, false, true, ...
	assert.Equal(r.t, want, high, "calls must alternate, true first: %v then %v", r.calls, high)
	r.calls = append(r.calls, high)
	r.mu.Unlock()
	if r.then != nil {
		r.then(high)
	}
	r.running.Add(-1)
}

func (r *pressureRecorder) got() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.calls...)
}

func pressurePool(t testing.TB, r *pressureRecorder, blocks, high, low int) *BytesPool {
	t.Helper()
	p, err := New(Config{MaxMemory: blocks * kb, BlockSize: kb, HighWater: high, LowWater: low, OnPressure: r.on})
	require.NoError(t, err)
	checkNoLeak(t, p)
	return p
}

// TestPressureMarks: true once at HighWater, false once at LowWater or
// below, on the goroutine of the write or free that crossed, before it
// returns.
func TestPressureMarks(t *testing.T) {
	r := &pressureRecorder{t: t}
	p := pressurePool(t, r, 16, 4*kb-100, 2*kb+100) // marks inside blocks: reached at 4, left at 2
	b := p.NewBytes(0)
	defer b.Free()
	writeAll(t, b, fill(3*kb, 1))
	require.Empty(t, r.got())
	writeAll(t, b, fill(kb, 2)) // 4 blocks
	require.Equal(t, []bool{true}, r.got(), "called before Write returns")
	writeAll(t, b, fill(3*kb, 3))
	require.Equal(t, []bool{true}, r.got())
	buf := make([]byte, 4*kb)
	_, err := b.Read(buf) // 3 blocks
	require.NoError(t, err)
	require.Len(t, r.got(), 1)
	_, err = b.Read(buf[:kb]) // 2 blocks
	require.NoError(t, err)
	require.Equal(t, []bool{true, false}, r.got())
	writeAll(t, b, fill(kb, 4)) // 3
	_, err = b.Read(buf[:kb])   // 2
	require.NoError(t, err)
	require.Len(t, r.got(), 2)
	writeAll(t, b, fill(2*kb, 5)) // 4 again
	require.Equal(t, []bool{true, false, true}, r.got())
	b.Reset()
	require.Equal(t, []bool{true, false, true, false}, r.got())

	// A pipe and a budget count like anything else.
	bg := p.NewBudget(8 * kb)
	pr, pw := bg.NewPipe(0)
	_, err = pw.Write(fill(5*kb, 6))
	require.NoError(t, err)
	require.Len(t, r.got(), 5)
	pr.Close()
	require.Len(t, r.got(), 6)
}

// TestPressureCallbackFrees: OnPressure may free Bytes, crossing the low
// mark from inside the call: no deadlock, and the false call follows.
func TestPressureCallbackFrees(t *testing.T) {
	r := &pressureRecorder{t: t}
	p := pressurePool(t, r, 16, 4*kb, kb)
	var victim *Bytes
	r.then = func(high bool) {
		_ = p.Stats()
		if high {
			victim.Free() // below LowWater at once
		}
	}
	victim = p.NewBytes(0)
	within(t, "a write whose callback frees", func() {
		writeAll(t, victim, fill(4*kb, 1))
	})
	require.Equal(t, []bool{true, false}, r.got())
	require.Equal(t, 0, p.Stats().BlocksInUse)
}

// TestPressureConcurrent: many goroutines crossing the marks; calls never
// overlap, alternate, and end matching the count.
func TestPressureConcurrent(t *testing.T) {
	r := &pressureRecorder{t: t}
	p := pressurePool(t, r, 32, 12*kb, 4*kb)
	r.then = func(bool) { _ = p.Stats() }
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if (g+i)%5 == 0 {
					pr, pw := p.NewPipe(2 * kb)
					go func() {
						_, _ = pw.Write(fill(3*kb, byte(i)))
						pw.Close()
					}()
					_, _ = io.Copy(io.Discard, pr)
					pr.Close()
					continue
				}
				b := p.NewBytes(0)
				_, _ = b.Write(fill(1+(g*i)%(3*kb), byte(g)))
				if i%2 == 0 {
					_, _ = b.Read(make([]byte, kb))
				}
				b.Free()
			}
		}()
	}
	wg.Wait()
	calls := r.got()
	require.NotEmpty(t, calls)
	require.False(t, calls[len(calls)-1], "all freed: the last call is false")
}
