package bytespool

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const kb = 1024

// budgetPool is a pool of blocks blocks of 1 KiB, checked for leaks.
func budgetPool(t testing.TB, blocks int) *BytesPool {
	t.Helper()
	return testPool(t, blocks*kb, kb)
}

// checkBudgetsEmpty registers a check that every budget holds nothing
// when the test ends.
func checkBudgetsEmpty(t testing.TB, bs ...*Budget) {
	t.Helper()
	t.Cleanup(func() {
		for i, b := range bs {
			s := b.Stats()
			assert.Equal(t, 0, s.BlocksInUse, "budget %d: %+v", i, s)
			assert.Equal(t, 0, s.BlockWaiters, "budget %d: %+v", i, s)
		}
	})
}

func TestNewBudgetPanics(t *testing.T) {
	p := budgetPool(t, 8)
	for _, m := range []int{-1, 1, kb - 1, kb + 1, 3*kb + 7} {
		require.Panics(t, func() { p.NewBudget(m) }, "pool.NewBudget(%d)", m)
		require.Panics(t, func() { p.NewBudget(0).NewBudget(m) }, "nested NewBudget(%d)", m)
	}
	require.Panics(t, func() { p.NewBudget(0).NewBytes(-1) })
	require.Panics(t, func() { p.NewBudget(0).NewPipe(-1) })
	require.Panics(t, func() { new(BytesPool).NewBudget(0) })
	for _, m := range []int{0, kb, 2 * kb, 100 * kb} { // a cap above the pool's is allowed
		require.NotPanics(t, func() { p.NewBudget(m).NewBudget(m) })
	}
}

func TestBudgetStats(t *testing.T) {
	p := budgetPool(t, 8)
	root := p.NewBudget(4 * kb)
	child := root.NewBudget(0)
	checkBudgetsEmpty(t, root, child)
	require.Equal(t, BudgetStats{BlocksTotal: 4}, root.Stats())
	require.Equal(t, BudgetStats{BlocksTotal: 8}, child.Stats(), "no cap of its own: the pool's")
	u := NewBytesPool(0, kb).NewBudget(0)
	require.Equal(t, 0, u.Stats().BlocksTotal, "unlimited pool, no cap")

	b := child.NewBytes(0)
	writeAll(t, b, fill(2*kb+1, 1))
	require.Equal(t, 3, child.Stats().BlocksInUse)
	require.Equal(t, 3, root.Stats().BlocksInUse)
	require.Equal(t, 3, p.Stats().BlocksInUse)
	buf := make([]byte, kb)
	_, err := b.Read(buf)
	require.NoError(t, err)
	require.Equal(t, 2, child.Stats().BlocksInUse)
	require.Equal(t, 2, root.Stats().BlocksInUse)
	b.Free()
	require.Equal(t, 0, root.Stats().BlocksInUse)
}

// TestBudgetCapWaits: a write that passes the budget's cap waits, though
// the pool has blocks free, and a free in the budget lets it through.
func TestBudgetCapWaits(t *testing.T) {
	p := budgetPool(t, 16)
	bg := p.NewBudget(4 * kb)
	checkBudgetsEmpty(t, bg)
	a, b := bg.NewBytes(0), bg.NewBytes(0)
	defer a.Free()
	defer b.Free()
	writeAll(t, a, fill(3*kb, 1))
	ch := parkedWrite(t, p, b, fill(2*kb, 2), 1)
	s := bg.Stats()
	require.Equal(t, 1, s.BlockWaiters)
	require.Equal(t, 1, p.Stats().BlockWaiters, "the pool counts writers queued at a budget")
	require.LessOrEqual(t, s.BlocksInUse, 4)
	require.Equal(t, 3, p.Stats().BlocksInUse, "the pool had blocks; the budget made it wait")
	buf := make([]byte, kb)
	_, err := a.Read(buf) // frees one block: 2 free in the budget
	require.NoError(t, err)
	r := await(t, "the write", ch)
	require.NoError(t, r.err)
	require.Equal(t, 4, bg.Stats().BlocksInUse)
	s = bg.Stats()
	require.Equal(t, uint64(1), s.Waits)
	require.Positive(t, s.WaitTime)
	require.Equal(t, fill(2*kb, 2), readAll(t, b))
}

// TestBudgetNestedCountsAtEveryLevel: siblings share their parent's cap,
// and a cap deeper down binds on its own.
func TestBudgetNestedCountsAtEveryLevel(t *testing.T) {
	p := budgetPool(t, 16)
	parent := p.NewBudget(3 * kb)
	x, y := parent.NewBudget(0), parent.NewBudget(2*kb)
	checkBudgetsEmpty(t, parent, x, y)
	bx, by := x.NewBytes(0), y.NewBytes(0)
	defer by.Free()
	writeAll(t, bx, fill(2*kb, 1))
	ch := parkedWrite(t, p, by, fill(2*kb, 2), 1) // y has room for 2; the parent has 1 left
	require.Equal(t, 0, y.Stats().BlockWaiters)
	require.Equal(t, 1, parent.Stats().BlockWaiters)
	require.Equal(t, 2, y.Stats().BlocksInUse, "reserved at y while it waits at the parent")
	bx.Free()
	require.NoError(t, await(t, "the write", ch).err)
	require.Equal(t, 2, parent.Stats().BlocksInUse)
	require.Equal(t, 0, x.Stats().BlocksInUse)

	// y's own cap: 2 blocks, whatever the parent has.
	_, err := by.Write(fill(1, 3))
	require.ErrorIs(t, err, ErrPoolTooSmall, "y's Bytes holds both of y's blocks, full")
}

// TestBudgetPoolTooSmall: a write that passes the smallest cap on its
// path, counting what its Bytes holds, fails at once.
func TestBudgetPoolTooSmall(t *testing.T) {
	p := budgetPool(t, 16)
	root := p.NewBudget(8 * kb)
	mid := root.NewBudget(3 * kb)
	leaf := mid.NewBudget(0)
	checkBudgetsEmpty(t, root, mid, leaf)
	b := leaf.NewBytes(0)
	defer b.Free()
	// Another holder fills mid, so a write that fits would wait.
	o := mid.NewBytes(0)
	defer o.Free()
	writeAll(t, o, fill(3*kb, 1))
	within(t, "a write past mid's cap", func() {
		_, err := b.Write(fill(3*kb+1, 2))
		require.ErrorIs(t, err, ErrPoolTooSmall)
	})
	o.Reset()
	writeAll(t, b, fill(2*kb, 3))
	within(t, "a write past mid's cap counting what b holds", func() {
		_, err := b.Write(fill(kb+1, 4))
		require.ErrorIs(t, err, ErrPoolTooSmall)
		_, err = b.ReadFrom(bytes.NewReader(fill(2*kb, 5)))
		require.ErrorIs(t, err, ErrPoolTooSmall)
	})
	require.Equal(t, 3*kb, b.Len(), "ReadFrom keeps what fitted")
	// A pipe bigger than the budget still works: in pieces.
	r, w := leaf.NewPipe(0)
	go func() {
		_, err := w.Write(fill(10*kb, 6))
		w.CloseWithError(err)
	}()
	b.Reset()
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, fill(10*kb, 6), got)
	r.Close()
}

// TestBudgetRecheck: a queued write of a Bytes that, through another
// Bytes' WriteTo, came to hold so much that the write can never fit the
// budget leaves the budget's queue with ErrPoolTooSmall.
func TestBudgetRecheck(t *testing.T) {
	p := budgetPool(t, 16)
	bg := p.NewBudget(4 * kb)
	checkBudgetsEmpty(t, bg)
	b, src := bg.NewBytes(0), bg.NewBytes(0)
	defer b.Free()
	defer src.Free()
	writeAll(t, src, fill(2*kb, 1))
	ch := parkedWrite(t, p, b, fill(3*kb, 2), 1) // 2 of 4 free in the budget
	n, err := src.WriteTo(b)                     // b now holds 2 blocks: 2+3 > 4
	require.NoError(t, err)
	require.Equal(t, int64(2*kb), n)
	r := await(t, "the queued write", ch)
	require.ErrorIs(t, r.err, ErrPoolTooSmall)
	require.Equal(t, fill(2*kb, 1), readAll(t, b))
}

// TestBudgetContextReleasesLowerLevels: a write holding its budget's
// blocks while it waits in the pool gives them back when its context ends.
func TestBudgetContextReleasesLowerLevels(t *testing.T) {
	p := budgetPool(t, 4)
	hold := holdBlocks(t, p, 4)
	defer func() {
		for _, h := range hold {
			h.Free()
		}
	}()
	leaf := p.NewBudget(8 * kb).NewBudget(2 * kb)
	checkBudgetsEmpty(t, leaf, leaf.parent)
	b := leaf.NewBytes(0)
	defer b.Free()
	ctx, cancel := context.WithCancel(context.Background())
	ch := async(func() (int, error) { return b.WriteContext(ctx, fill(2*kb, 1)) })
	waitWaiters(t, p, 1)
	eventually(t, func() bool { return leaf.Stats().BlocksInUse == 2 && leaf.parent.Stats().BlocksInUse == 2 })
	cancel()
	r := await(t, "the cancelled write", ch)
	require.ErrorIs(t, r.err, context.Canceled)
	require.Equal(t, 0, leaf.Stats().BlocksInUse)
	require.Equal(t, 0, leaf.parent.Stats().BlocksInUse)

	// And cancelled while queued at the budget itself.
	o := leaf.NewBytes(0)
	defer o.Free()
	hold[0].Free()
	hold[1].Free()
	hold = hold[2:]
	writeAll(t, o, fill(kb, 2))
	ctx, cancel = context.WithCancel(context.Background())
	ch = async(func() (int, error) { return b.WriteContext(ctx, fill(2*kb, 1)) })
	eventually(t, func() bool { return leaf.Stats().BlockWaiters == 1 })
	cancel()
	require.ErrorIs(t, await(t, "the cancelled write", ch).err, context.Canceled)
	require.Equal(t, 1, leaf.Stats().BlocksInUse)
	_, err := b.WriteContext(context.Background(), fill(kb, 3))
	require.NoError(t, err, "the cancelled waiter holds nothing back")
}

// TestBudgetFIFO: at a budget's cap, a later small write does not pass an
// earlier large one.
func TestBudgetFIFO(t *testing.T) {
	p := budgetPool(t, 16)
	bg := p.NewBudget(4 * kb)
	checkBudgetsEmpty(t, bg)
	full, large, small := bg.NewBytes(0), bg.NewBytes(0), bg.NewBytes(0)
	defer large.Free()
	defer small.Free()
	writeAll(t, full, fill(4*kb, 1))
	chL := parkedWrite(t, p, large, fill(3*kb, 2), 1)
	chS := parkedWrite(t, p, small, fill(kb, 3), 2)
	buf := make([]byte, kb)
	_, err := full.Read(buf) // one block free: the small write would fit
	require.NoError(t, err)
	time.Sleep(settle)
	require.True(t, stillRunning(chS), "the small write passed the large one")
	full.Free()
	require.NoError(t, await(t, "large", chL).err)
	require.NoError(t, await(t, "small", chS).err)
}

// TestBudgetFreeWhileWaiting: Free wakes a write queued at a budget.
func TestBudgetFreeWhileWaiting(t *testing.T) {
	p := budgetPool(t, 16)
	bg := p.NewBudget(2 * kb)
	checkBudgetsEmpty(t, bg)
	o := bg.NewBytes(0)
	defer o.Free()
	writeAll(t, o, fill(2*kb, 1))
	b := bg.NewBytes(0)
	ch := parkedWrite(t, p, b, fill(kb, 2), 1)
	b.Free()
	require.ErrorIs(t, await(t, "the write", ch).err, ErrClosed)
}

// TestBudgetHotBlocksKeepTheCap: a block that a budget's Bytes frees goes
// hot with its pool reservation only; the budget's cap still holds.
func TestBudgetHotBlocksKeepTheCap(t *testing.T) {
	p := budgetPool(t, 16)
	bg := p.NewBudget(kb)
	checkBudgetsEmpty(t, bg)
	a, b, c := bg.NewBytes(0), bg.NewBytes(0), p.NewBytes(0)
	defer a.Free()
	defer b.Free()
	defer c.Free()
	buf := make([]byte, 10)
	for range 100 {
		writeAll(t, a, fill(10, 1))
		_, err := a.Read(buf) // the block goes hot
		require.NoError(t, err)
		writeAll(t, c, fill(10, 2)) // a pool Bytes takes it
		_, err = c.Read(buf)
		require.NoError(t, err)
		require.Equal(t, 0, bg.Stats().BlocksInUse)
	}
	writeAll(t, a, fill(10, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := b.WriteContext(ctx, fill(10, 3))
	require.ErrorIs(t, err, context.DeadlineExceeded, "one block, held by a")
	require.Equal(t, 1, bg.Stats().BlocksInUse)
}

// TestBudgetWriteToBetweenBudgets: WriteTo moves the blocks themselves
// when the destination's budget can take them at once, and copies when it
// cannot; the counts follow the blocks either way.
func TestBudgetWriteToBetweenBudgets(t *testing.T) {
	p := budgetPool(t, 32)
	root := p.NewBudget(16 * kb)
	x, y := root.NewBudget(4*kb), root.NewBudget(3*kb)
	checkBudgetsEmpty(t, root, x, y)
	src, dst, plain := x.NewBytes(0), y.NewBytes(0), p.NewBytes(0)
	defer src.Free()
	defer dst.Free()
	defer plain.Free()

	writeAll(t, src, fill(2*kb, 1))
	n, err := src.WriteTo(dst) // y takes 2 at once
	require.NoError(t, err)
	require.Equal(t, int64(2*kb), n)
	require.Equal(t, 0, x.Stats().BlocksInUse)
	require.Equal(t, 2, y.Stats().BlocksInUse)
	require.Equal(t, 2, root.Stats().BlocksInUse, "the shared level counts them throughout")
	require.Equal(t, 2, p.Stats().BlocksInUse)

	// y is full: src's blocks cannot move, and the copy waits until dst
	// is read.
	other := y.NewBytes(0)
	writeAll(t, other, fill(kb, 9))
	writeAll(t, src, fill(kb, 2))
	ch := async(func() (int64, error) { return src.WriteTo(dst) })
	eventually(t, func() bool { return y.Stats().BlockWaiters == 1 })
	first := make([]byte, 2*kb)
	_, err = io.ReadFull(dst, first)
	require.NoError(t, err)
	require.Equal(t, fill(2*kb, 1), first)
	r := await(t, "the copying WriteTo", ch)
	require.NoError(t, r.err)
	require.Equal(t, int64(kb), r.n)
	other.Free()
	require.Equal(t, 1, y.Stats().BlocksInUse)
	require.Equal(t, 0, x.Stats().BlocksInUse)

	// To a Bytes of the pool alone, and back.
	n, err = dst.WriteTo(plain)
	require.NoError(t, err)
	require.Equal(t, int64(kb), n)
	require.Equal(t, 0, root.Stats().BlocksInUse)
	require.Equal(t, 1, p.Stats().BlocksInUse)
	n, err = plain.WriteTo(src)
	require.NoError(t, err)
	require.Equal(t, int64(kb), n)
	require.Equal(t, 1, x.Stats().BlocksInUse)
	require.Equal(t, 1, root.Stats().BlocksInUse)
	require.Equal(t, fill(kb, 2), readAll(t, src))
}

// TestBudgetPipe: a pipe of a budget counts its blocks there, keeps its own
// bound inside the budget's, and gives everything back on Close.
func TestBudgetPipe(t *testing.T) {
	p := budgetPool(t, 32)
	bg := p.NewBudget(4 * kb)
	checkBudgetsEmpty(t, bg)
	r, w := bg.NewPipe(2 * kb) // at most 3 blocks
	_, err := w.Write(fill(2*kb, 1))
	require.NoError(t, err)
	require.Equal(t, 2, bg.Stats().BlocksInUse)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	n, err := w.WriteContext(ctx, fill(1, 2))
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "maxBuffered still applies")
	require.Zero(t, n)

	// A second pipe of the budget waits at the budget's cap.
	r2, w2 := bg.NewPipe(0)
	ch := async(func() (int, error) { return w2.Write(fill(3*kb, 3)) })
	eventually(t, func() bool { return bg.Stats().BlockWaiters == 1 })
	require.LessOrEqual(t, bg.Stats().BlocksInUse, 4)
	r.Close() // the first pipe's blocks go back
	require.Equal(t, 0, p.Stats().BlocksInUse-bg.Stats().BlocksInUse)
	got := make([]byte, 3*kb)
	_, err = io.ReadFull(r2, got)
	require.NoError(t, err)
	require.NoError(t, await(t, "the second pipe's write", ch).err)
	require.Equal(t, fill(3*kb, 3), got)
	w2.Close()
	_, err = r2.Read(got)
	require.ErrorIs(t, err, io.EOF)

	// Close while the writer waits at the budget.
	r3, w3 := bg.NewPipe(0)
	o := bg.NewBytes(0)
	writeAll(t, o, fill(4*kb, 4))
	ch = async(func() (int, error) { return w3.Write(fill(kb, 5)) })
	eventually(t, func() bool { return bg.Stats().BlockWaiters == 1 })
	r3.Close()
	require.ErrorIs(t, await(t, "the write", ch).err, io.ErrClosedPipe)
	o.Free()
}

// forgetBudgetBytesForLeakTest makes a Bytes of bg with 1500 bytes and
// drops it.
//
//go:noinline
func forgetBudgetBytesForLeakTest(bg *Budget) {
	b := bg.NewBytes(0)
	if _, err := b.Write(fill(1500, 7)); err != nil {
		panic(err)
	}
}

// TestBudgetLeakAndDebug: leak reports and Debug work for a budget's Bytes
// and pipes, and a reclaimed Bytes gives its blocks back to its budget.
func TestBudgetLeakAndDebug(t *testing.T) {
	var rec leakRecorder
	p := leakPool(t, true, rec.onLeak)
	bg := p.NewBudget(4 * kb)
	checkBudgetsEmpty(t, bg)
	forgetBudgetBytesForLeakTest(bg)
	require.Equal(t, 2, bg.Stats().BlocksInUse)
	gcUntil(t, func() bool { return len(rec.got()) > 0 }, "OnLeak must report the forgotten Bytes")
	l := rec.got()[0]
	require.Equal(t, 2, l.Blocks)
	require.Contains(t, l.Made, "bytespool.forgetBudgetBytesForLeakTest\n\t")
	require.Equal(t, 0, bg.Stats().BlocksInUse)

	b := bg.NewBytes(0)
	b.Free()
	require.Panics(t, func() { b.Free() }, "Debug catches a second Free of a budget's Bytes")
	r, w := bg.NewPipe(0)
	_, err := w.Write(fill(10, 1))
	require.NoError(t, err)
	r.Close()
}

// TestBudgetStress: goroutines write and read Bytes and pipes of nested
// budgets, with random sizes and cancelled contexts, while a sampler
// checks that no level ever holds more than its cap; at the end every
// count is back to 0.
func TestBudgetStress(t *testing.T) {
	const blocks = 24
	p := budgetPool(t, blocks)
	root := p.NewBudget(16 * kb)
	a := root.NewBudget(8 * kb)
	b := root.NewBudget(0)
	a1, a2 := a.NewBudget(3*kb), a.NewBudget(0)
	b1 := b.NewBudget(5 * kb)
	leaves := []*Budget{a1, a2, b1, b, root}
	all := []*Budget{root, a, b, a1, a2, b1}
	checkBudgetsEmpty(t, all...)

	var stop atomic.Bool
	var samples atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for !stop.Load() {
			s := p.Stats()
			if !assert.LessOrEqual(t, s.BlocksInUse, blocks) {
				return
			}
			for i, bg := range all {
				bs := bg.Stats()
				if bg.total > 0 && !assert.LessOrEqual(t, bs.BlocksInUse, bg.total, "budget %d", i) {
					return
				}
			}
			samples.Add(1)
			runtime.Gosched()
		}
	}()

	goroutines, rounds := 24, 150
	if testing.Short() {
		rounds = 40
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range rounds {
				bg := leaves[rng.IntN(len(leaves))]
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(2000))*time.Microsecond)
				if rng.IntN(4) == 0 {
					stressPipe(t, ctx, bg, rng)
				} else {
					stressBytes(t, ctx, bg, rng)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	<-sampled
	require.Positive(t, samples.Load())
	for i, bg := range all {
		require.Equal(t, 0, bg.Stats().BlocksInUse, "budget %d", i)
	}
	require.Equal(t, 0, p.Stats().BlocksInUse)
}

func stressBytes(t *testing.T, ctx context.Context, bg *Budget, rng *rand.Rand) {
	x := bg.NewBytes(rng.IntN(3) * 2 * kb)
	defer x.Free()
	var want []byte
	for range 1 + rng.IntN(4) {
		data := fill(rng.IntN(3*kb), byte(rng.Uint32()))
		n, err := x.WriteContext(ctx, data)
		switch err {
		case nil:
			want = append(want, data...)
		case context.DeadlineExceeded, ErrPoolTooSmall, ErrBytesCapacityTooSmall:
			assert.Zero(t, n)
		default:
			assert.NoError(t, err)
			return
		}
		if rng.IntN(3) == 0 {
			buf := make([]byte, rng.IntN(2*kb)+1)
			n, _ := x.Read(buf)
			if !assert.True(t, bytes.Equal(want[:n], buf[:n])) {
				return
			}
			want = want[n:]
		}
	}
	if rng.IntN(2) == 0 {
		return // Free drops the rest
	}
	got := readAll(t, x)
	assert.True(t, bytes.Equal(want, got))
}

func stressPipe(t *testing.T, ctx context.Context, bg *Budget, rng *rand.Rand) {
	r, w := bg.NewPipe(rng.IntN(3) * kb)
	data := fill(rng.IntN(6*kb), byte(rng.Uint32()))
	done := make(chan int, 1)
	go func() {
		n, _ := w.WriteContext(ctx, data)
		w.Close()
		done <- n
	}()
	got, err := io.ReadAll(r)
	assert.NoError(t, err)
	n := <-done
	assert.True(t, bytes.Equal(data[:n], got))
	r.Close()
}
