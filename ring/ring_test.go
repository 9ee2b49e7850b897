package ring

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/atomic"

	"github.com/zjj/bytespool/internal/cacheline"
)

func TestNewPanics(t *testing.T) {
	cases := []int{0, -1, math.MinInt}
	// 1<<31 + 1 overflows int on 32-bit platforms.
	if tooBig := int64(1)<<31 + 1; int64(int(tooBig)) == tooBig {
		cases = append(cases, int(tooBig))
	}
	for _, c := range cases {
		msg := fmt.Sprintf("ring: capacity must be between 1 and 1<<31, got %d", c)
		require.PanicsWithValue(t, msg, func() { New(c) }, "New(%d)", c)
	}
}

func TestNewRoundsUp(t *testing.T) {
	for _, c := range []struct{ in, want int }{
		{1, 1}, {2, 2}, {3, 4}, {4, 4}, {5, 8}, {1000, 1024}, {1024, 1024}, {1025, 2048},
	} {
		r := New(c.in)
		assert.Equal(t, c.want, r.Cap(), "New(%d).Cap()", c.in)
		assert.Equal(t, 0, r.Len(), "New(%d).Len()", c.in)
	}
}

// TestInitIn checks that Rings made in place, by Init and over a buffer by
// InitIn, work as New's do, that InitIn uses the buffer given, and that it
// refuses a length that is not a power of two.
func TestInitIn(t *testing.T) {
	assert.Equal(t, 1, Slots(1))
	assert.Equal(t, 8, Slots(5))
	assert.Equal(t, 1024, Slots(1000))
	require.Panics(t, func() { Slots(0) })

	var rings [3]Ring
	rings[0].Init(5)
	buf := make([]uint64, 16)
	rings[1].InitIn(buf[:8:8])
	rings[2].InitIn(buf[8:])
	for i := range rings {
		r := &rings[i]
		require.Equal(t, 8, r.Cap())
		for v := range uint32(8) {
			require.True(t, r.Push(v+uint32(10*i)))
		}
		require.False(t, r.Push(99), "full")
	}
	assert.NotZero(t, buf[7], "the second ring's values are in the first half of buf")
	assert.NotZero(t, buf[15], "the third's in the second")
	for i := range rings {
		for v := range uint32(8) {
			got, ok := rings[i].Pop()
			require.True(t, ok)
			require.Equal(t, v+uint32(10*i), got, "FIFO")
		}
		_, ok := rings[i].Pop()
		require.False(t, ok, "empty")
	}
	for _, n := range []int{0, 3, 6} {
		var r Ring
		require.Panics(t, func() { r.InitIn(make([]uint64, n)) }, "len %d", n)
	}
}

// TestLayout checks what the Ring's comments promise about field layout:
// 64-bit alignment of every atomic (needed on 32-bit platforms) and a
// full cache line between the hot fields.
func TestLayout(t *testing.T) {
	var r Ring
	var s slot
	assert.Equal(t, uintptr(8), unsafe.Sizeof(s))
	assert.Zero(t, unsafe.Offsetof(s.word)%8)
	assert.Zero(t, unsafe.Offsetof(r.head)%8)
	assert.Zero(t, unsafe.Offsetof(r.tail)%8)
	assert.GreaterOrEqual(t, unsafe.Offsetof(r.head), uintptr(cacheline.Size))
	assert.GreaterOrEqual(t, unsafe.Offsetof(r.tail)-unsafe.Offsetof(r.head), uintptr(cacheline.Size+8))
	assert.Equal(t, unsafe.Offsetof(r.tail)+8, unsafe.Offsetof(r.seenHead), "seenHead shares tail's line")
	assert.GreaterOrEqual(t, unsafe.Offsetof(r.mask)-unsafe.Offsetof(r.seenHead), uintptr(cacheline.Size+8))
}

// TestSeenHead checks that Pushes see the room that Pops made even though
// their cached head is stale, and that they claim exactly that room.
func TestSeenHead(t *testing.T) {
	r := New(8)
	vs := []uint32{0, 1, 2, 3, 4, 5, 6, 7}
	require.Equal(t, 8, r.PushN(vs))
	require.Equal(t, 0, r.PushN(vs), "PushN on full ring")
	var dst [3]uint32
	require.Equal(t, 3, r.PopN(dst[:]))
	// seenHead still says full; the Pushes must look at head.
	require.Equal(t, 2, r.PushN([]uint32{10, 11}))
	require.True(t, r.Push(12))
	require.False(t, r.Push(13), "Push on full ring")
	var all [8]uint32
	require.Equal(t, 8, r.PopN(all[:]))
	assert.Equal(t, [8]uint32{3, 4, 5, 6, 7, 10, 11, 12}, all)
}

// fillDrain fills r to capacity, checks that one more Push fails, and drains
// it, checking FIFO order and Len along the way. base makes the values of
// successive calls differ.
func fillDrain(t *testing.T, r *Ring, base uint32) {
	t.Helper()
	n := r.Cap()
	v, ok := r.Pop()
	require.False(t, ok, "Pop on empty ring")
	require.Zero(t, v, "Pop on empty ring")
	for i := 0; i < n; i++ {
		require.Equal(t, i, r.Len())
		require.True(t, r.Push(base+uint32(i)), "Push %d of %d", i, n)
	}
	require.Equal(t, n, r.Len())
	require.False(t, r.Push(base+uint32(n)), "Push on full ring")
	require.Equal(t, n, r.Len())
	for i := 0; i < n; i++ {
		v, ok := r.Pop()
		require.True(t, ok, "Pop %d of %d", i, n)
		require.Equal(t, base+uint32(i), v, "Pop %d of %d", i, n)
		require.Equal(t, n-i-1, r.Len())
	}
	v, ok = r.Pop()
	require.False(t, ok, "Pop on drained ring")
	require.Zero(t, v, "Pop on drained ring")
	require.Equal(t, 0, r.Len())
}

func TestFillDrain(t *testing.T) {
	for _, c := range []int{1, 2, 8, 1000} {
		r := New(c)
		for lap := 0; lap < 3; lap++ {
			fillDrain(t, r, uint32(lap*10000))
		}
	}
}

func TestCapOne(t *testing.T) {
	r := New(1)
	for i := uint32(0); i < 1000; i++ {
		require.True(t, r.Push(i))
		require.False(t, r.Push(i+1), "Push on full ring of 1")
		require.Equal(t, 1, r.Len())
		v, ok := r.Pop()
		require.True(t, ok)
		require.Equal(t, i, v)
		_, ok = r.Pop()
		require.False(t, ok, "Pop on empty ring of 1")
		require.Equal(t, 0, r.Len())
	}
}

// wraps are the points where the positions wrap: 2^32 (where a 32-bit
// position would) and 2^64 (0, where the uint64 counters do).
var wraps = []uint64{1 << 32, 0}

// crossed reports whether a counter that started a little before wrap is
// now a little past it.
func crossed(counter, wrap uint64) bool {
	return counter-wrap < 1<<30
}

func TestWraparound(t *testing.T) {
	for _, wrap := range wraps {
		for _, c := range []int{1, 4, 8} {
			r := newAt(c, wrap-5)
			// Full laps.
			for lap := 0; lap < 4; lap++ {
				fillDrain(t, r, uint32(lap*100))
			}
			// Half-full, sliding: the ring holds k or k+1 values
			// while the counters cross the wrap one by one.
			r = newAt(c, wrap-5)
			k := r.Cap() / 2
			next, want := uint32(0), uint32(0)
			for i := 0; i < k; i++ {
				require.True(t, r.Push(next))
				next++
			}
			for i := 0; i < 10; i++ {
				require.True(t, r.Push(next), "wrap %#x cap %d step %d", wrap, c, i)
				next++
				require.Equal(t, k+1, r.Len())
				v, ok := r.Pop()
				require.True(t, ok)
				require.Equal(t, want, v, "wrap %#x cap %d step %d", wrap, c, i)
				want++
				require.Equal(t, k, r.Len())
			}
			require.True(t, crossed(r.head.Load(), wrap), "head %#x did not cross %#x", r.head.Load(), wrap)
		}
	}
}

// A stopper lets the goroutines of a stress test stop one another, so that
// a broken ring fails the test promptly instead of hanging it (a lost value
// leaves consumers waiting for ever).
type stopper struct {
	t        *testing.T
	stop     atomic.Bool
	deadline time.Time
}

func newStopper(t *testing.T) *stopper {
	return &stopper{t: t, deadline: time.Now().Add(20 * time.Second)}
}

// fail reports the first failure and stops every goroutine.
func (s *stopper) fail(format string, args ...any) {
	if s.stop.CompareAndSwap(false, true) {
		s.t.Errorf(format, args...)
	}
}

func (s *stopper) stopped() bool { return s.stop.Load() }

// retry yields before a Push or Pop is retried. It reports false once the
// goroutine should give up: after a failure, or past the deadline.
func (s *stopper) retry() bool {
	runtime.Gosched()
	if s.stop.Load() {
		return false
	}
	if time.Now().After(s.deadline) {
		s.fail("no progress before the deadline: a value was lost or the ring is stuck")
		return false
	}
	return true
}

// stress runs producers goroutines that each push a disjoint range of
// perProducer values into r, and consumers goroutines that pop until every
// value is seen. It checks that every value is popped exactly once and that
// each consumer sees each producer's values in increasing order.
func stress(t *testing.T, r *Ring, producers, consumers, perProducer int) {
	t.Helper()
	total := producers * perProducer
	seen := make([]atomic.Int32, total)
	var popped atomic.Int64
	st := newStopper(t)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < perProducer; i++ {
				for !r.Push(uint32(p*perProducer + i)) {
					if !st.retry() {
						return
					}
				}
			}
		}(p)
	}
	for c := 0; c < consumers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			last := make([]int, producers) // last value seen per producer
			for i := range last {
				last[i] = -1
			}
			for popped.Load() < int64(total) && !st.stopped() {
				u, ok := r.Pop()
				if !ok {
					if !st.retry() {
						return
					}
					continue
				}
				popped.Inc()
				v := int(u)
				if v >= total {
					st.fail("consumer %d: popped %d, never pushed", c, v)
					return
				}
				if n := seen[v].Inc(); n != 1 {
					st.fail("consumer %d: value %d popped %d times", c, v, n)
					return
				}
				p := v / perProducer
				if v <= last[p] {
					st.fail("consumer %d: producer %d's value %d after %d", c, p, v, last[p])
					return
				}
				last[p] = v
			}
		}(c)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for v := range seen {
		require.Equal(t, int32(1), seen[v].Load(), "value %d popped", v)
	}
	_, ok := r.Pop()
	require.False(t, ok, "ring not empty after all values were popped")
	require.Equal(t, 0, r.Len())
}

func TestStressMPMC(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for _, c := range []struct{ p, c, cap int }{
		{1, 1, 8}, {4, 4, 8}, {4, 4, 64}, {8, 2, 8}, {2, 8, 8}, {4, 4, 1},
	} {
		t.Run(fmt.Sprintf("P%dC%dcap%d", c.p, c.c, c.cap), func(t *testing.T) {
			stress(t, New(c.cap), c.p, c.c, n/c.p)
		})
	}
}

func TestStressWraparound(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for _, wrap := range wraps {
		t.Run(fmt.Sprintf("wrap%#x", wrap), func(t *testing.T) {
			// Start a little before the wrap so that it happens
			// while all goroutines are running.
			r := newAt(8, wrap-100)
			stress(t, r, 4, 4, n/4)
			require.True(t, crossed(r.head.Load(), wrap), "head %#x did not cross %#x", r.head.Load(), wrap)
		})
	}
}

// TestRecycle mirrors the pool's use of the ring as a free list: the ring
// starts holding every block index, and goroutines take an index, own it
// for a moment, and give it back. An index handed to two owners at once
// fails the test.
func TestRecycle(t *testing.T) {
	const goroutines = 8
	rounds := 10000
	if testing.Short() {
		rounds = 1000
	}
	for _, c := range []int{1, 4, 16} {
		t.Run(fmt.Sprintf("cap%d", c), func(t *testing.T) {
			// Cross the 2^64 wrap halfway through.
			r := newAt(c, -uint64(goroutines*rounds/2))
			owners := make([]atomic.Int32, r.Cap())
			for i := 0; i < r.Cap(); i++ {
				require.True(t, r.Push(uint32(i)))
			}
			st := newStopper(t)
			var wg sync.WaitGroup
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < rounds && !st.stopped(); i++ {
						v, ok := r.Pop()
						for ; !ok; v, ok = r.Pop() {
							if !st.retry() {
								return
							}
						}
						if v >= uint32(len(owners)) {
							st.fail("popped %d, never pushed", v)
							return
						}
						if n := owners[v].Inc(); n != 1 {
							st.fail("index %d has %d owners", v, n)
							return
						}
						if i%16 == 0 {
							runtime.Gosched() // hold it a while
						}
						owners[v].Dec()
						// Push can report full while another
						// goroutine's Pop is still finishing.
						for !r.Push(v) {
							if !st.retry() {
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			require.Equal(t, r.Cap(), r.Len())
			got := make([]bool, r.Cap())
			for i := 0; i < r.Cap(); i++ {
				v, ok := r.Pop()
				require.True(t, ok)
				require.False(t, got[v], "index %d in the ring twice", v)
				got[v] = true
			}
			_, ok := r.Pop()
			require.False(t, ok)
		})
	}
}

func TestLenClamp(t *testing.T) {
	// A snapshot that loads head, and then tail after more than a lap
	// of Pushes and Pops, sees tail-head > Cap(). Fake one.
	r := newAt(4, math.MaxUint64-1)
	r.tail.Store(r.head.Load() + 100)
	assert.Equal(t, 4, r.Len())
	r.tail.Store(r.head.Load() + 4)
	assert.Equal(t, 4, r.Len())
	r.tail.Store(r.head.Load() + 3)
	assert.Equal(t, 3, r.Len())
}

func TestLenConcurrent(t *testing.T) {
	r := New(4)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for !stop.Load() {
				if g%2 == 0 {
					r.Push(uint32(g))
				} else {
					r.Pop()
				}
			}
		}(g)
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	for i := 0; i < 100000; i++ {
		if n := r.Len(); n < 0 || n > r.Cap() {
			t.Fatalf("Len() = %d, want in [0, %d]", n, r.Cap())
		}
	}
}

func TestPushPopAllocs(t *testing.T) {
	r := New(8)
	allocs := testing.AllocsPerRun(1000, func() {
		r.Push(1)
		r.Pop()
	})
	assert.Zero(t, allocs)
}

const benchCap = 1024

func BenchmarkPushPop(b *testing.B) {
	r := New(benchCap)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.Push(uint32(i))
		r.Pop()
	}
}

func BenchmarkPushPopParallel(b *testing.B) {
	r := New(benchCap)
	for i := 0; i < benchCap; i++ {
		r.Push(uint32(i))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v, ok := r.Pop()
			for ; !ok; v, ok = r.Pop() {
				runtime.Gosched()
			}
			for !r.Push(v) {
				runtime.Gosched()
			}
		}
	})
}

func BenchmarkChanPushPop(b *testing.B) {
	ch := make(chan uint32, benchCap)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ch <- uint32(i)
		<-ch
	}
}

func BenchmarkChanPushPopParallel(b *testing.B) {
	ch := make(chan uint32, benchCap)
	for i := 0; i < benchCap; i++ {
		ch <- uint32(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ch <- <-ch
		}
	})
}

// TestBatch checks PushN and PopN against the single-value calls: order,
// partial pushes into a nearly full ring, partial pops from a nearly empty
// one, and runs that wrap around the slot array and the counters.
func TestBatch(t *testing.T) {
	for _, start := range []uint64{0, 1<<32 - 3, math.MaxUint64 - 3} {
		r := newAt(8, start)
		assert.Equal(t, 0, r.PopN(make([]uint32, 4)), "PopN on an empty ring")
		assert.Equal(t, 0, r.PushN(nil))
		next, want := uint32(0), uint32(0)
		for round := 0; round < 20; round++ {
			vs := make([]uint32, 1+round%11)
			for i := range vs {
				vs[i] = next + uint32(i)
			}
			free := r.Cap() - r.Len()
			n := r.PushN(vs)
			require.Equal(t, min(len(vs), free), n, "round %d: PushN adds what fits", round)
			next += uint32(n)
			if round%3 == 0 {
				v, ok := r.Pop()
				require.True(t, ok)
				require.Equal(t, want, v)
				want++
			}
			dst := make([]uint32, 1+round%5)
			k := r.PopN(dst)
			require.Equal(t, min(len(dst), int(next-want)), k, "round %d: PopN takes what is there", round)
			for i := 0; i < k; i++ {
				require.Equal(t, want, dst[i], "round %d: FIFO order", round)
				want++
			}
			require.Equal(t, int(next-want), r.Len())
		}
	}
}

// TestBatchStress moves values through a small ring in runs of random
// length from several goroutines; each value must come out exactly once.
func TestBatchStress(t *testing.T) {
	const producers, consumers = 3, 3
	per := 20000
	if testing.Short() {
		per = 2000
	}
	r := New(16)
	total := producers * per
	seen := make([]atomic.Int32, total)
	var got atomic.Int64
	s := newStopper(t)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			next := p * per
			end := next + per
			for next < end && !s.stopped() {
				k := min(1+next%7, end-next)
				vs := make([]uint32, k)
				for i := range vs {
					vs[i] = uint32(next + i)
				}
				n := r.PushN(vs)
				next += n
				if n == 0 && !s.retry() {
					return
				}
			}
		}(p)
	}
	for c := 0; c < consumers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			dst := make([]uint32, 1+c*3)
			for got.Load() < int64(total) && !s.stopped() {
				n := r.PopN(dst)
				for _, v := range dst[:n] {
					if seen[v].Inc() != 1 {
						s.fail("value %d popped twice", v)
					}
				}
				got.Add(int64(n))
				if n == 0 && !s.retry() {
					return
				}
			}
		}(c)
	}
	wg.Wait()
	require.False(t, s.stopped(), "stress run gave up")
	require.Equal(t, int64(total), got.Load())
	for v := range seen {
		require.Equal(t, int32(1), seen[v].Load(), "value %d", v)
	}
}

// TestPopWeighted checks that PopWeighted counts value v as v>>shift + 1
// items and stops once it has want items (the last value may take it
// past want), when dst is full, or at a position not yet published.
func TestPopWeighted(t *testing.T) {
	const shift = 28
	r := New(16)
	vs := []uint32{2<<shift | 1, 2, 7<<shift | 3, 1<<shift | 4} // 3, 1, 8 and 2 items
	require.Equal(t, len(vs), r.PushN(vs))
	dst := make([]uint32, 8)
	for _, step := range []struct {
		dst, want int
		n, items  int
		values    []uint32
	}{
		{8, 4, 2, 4, vs[:2]},      // stops at exactly want
		{8, 1, 1, 8, vs[2:3]},     // one value past want
		{0, 5, 0, 0, []uint32{}},  // dst holds nothing
		{8, 99, 1, 2, vs[3:]},     // the ring runs out
		{8, 99, 0, 0, []uint32{}}, // empty
	} {
		n, items := r.PopWeighted(dst[:step.dst], step.want, shift)
		require.Equal(t, step.n, n, "%+v", step)
		require.Equal(t, step.items, items, "%+v", step)
		require.Equal(t, step.values, dst[:n], "%+v", step)
	}

	require.Equal(t, 3, r.PushN([]uint32{1, 2, math.MaxUint32}))
	n, items := r.PopWeighted(dst, 99, 32)
	assert.Equal(t, []int{3, 3}, []int{n, items}, "shift 32 counts one item per value")
	require.Equal(t, 3, r.PushN([]uint32{1, 2, 3}))
	n, items = r.PopWeighted(dst[:2], 99, 32)
	assert.Equal(t, []int{2, 2}, []int{n, items}, "a full dst stops it")
	assert.Equal(t, 1, r.Len())

	// Position 1 is claimed but not yet published.
	r = New(4)
	require.Equal(t, 1, r.PushN([]uint32{1}))
	pos, k := r.claim(1)
	require.Equal(t, uint64(1), k)
	require.Equal(t, 1, r.PushN([]uint32{3}))
	n, items = r.PopWeighted(dst, 99, 32)
	assert.Equal(t, []int{1, 1}, []int{n, items}, "stops before the unpublished position")
	r.slots[pos&r.mask].word.Store(pack(pos, 2))
	n, items = r.PopWeighted(dst, 99, 32)
	assert.Equal(t, []int{2, 2}, []int{n, items})
	assert.Equal(t, []uint32{2, 3}, dst[:n])
}
