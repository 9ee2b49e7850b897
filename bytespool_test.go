package bytespool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/atomic"

	"github.com/zjj/bytespool/slab"
)

// ---------------------------------------------------------------------------
// Configuration and bad input

func TestNewRejectsBadConfig(t *testing.T) {
	type tc struct {
		name  string
		cfg   Config
		field string // the field the message must name
		value string // the offending value the message must show
	}
	cases := []tc{
		{"negative MaxMemory", Config{MaxMemory: -1}, "MaxMemory", "-1"},
		{"very negative MaxMemory", Config{MaxMemory: -1 << 40, BlockSize: 512}, "MaxMemory", strconv.Itoa(-1 << 40)},
		{"negative BlockSize", Config{BlockSize: -1}, "BlockSize", "-1"},
		{"negative BlockSize, limited", Config{MaxMemory: 1 << 20, BlockSize: -4096}, "BlockSize", "-4096"},
		{"BlockSize over MaxBlockSize", Config{BlockSize: MaxBlockSize + 1}, "BlockSize", strconv.Itoa(MaxBlockSize + 1)},
		{"MaxMemory under one block", Config{MaxMemory: 100, BlockSize: 4096}, "MaxMemory", "100"},
		{"MaxMemory one byte short of the default block", Config{MaxMemory: DefaultBlockSize - 1}, "MaxMemory", strconv.Itoa(DefaultBlockSize - 1)},
		{"MaxMemory not a whole number of blocks", Config{MaxMemory: 3*1000 + 999, BlockSize: 1000}, "MaxMemory", "3999"},
		{"MaxMemory one byte over a whole number of default blocks", Config{MaxMemory: 2*DefaultBlockSize + 1}, "MaxMemory", strconv.Itoa(2*DefaultBlockSize + 1)},
	}
	if strconv.IntSize == 64 {
		// More blocks than uint32 indices can name.
		cases = append(cases, tc{"more blocks than indices", Config{MaxMemory: 1 << 32, BlockSize: 1}, "MaxMemory", strconv.Itoa(1 << 32)})
		// One block more than a free ring can hold.
		cases = append(cases, tc{"more blocks than a ring holds", Config{MaxMemory: 1<<31 + 1, BlockSize: 1}, "MaxMemory", strconv.Itoa(1<<31 + 1)})
		// Arenas beyond the address space: an error, never a crash.
		cases = append(cases, tc{"256 TiB", Config{MaxMemory: 1 << 48, BlockSize: 1 << 17}, "MaxMemory", strconv.Itoa(1 << 48)})
		cases = append(cases, tc{"2 EiB", Config{MaxMemory: 1 << 61, BlockSize: 1 << 30}, "MaxMemory", strconv.Itoa(1 << 61)})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := New(c.cfg)
			require.Error(t, err)
			assert.Nil(t, p)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), c.field)
			assert.Contains(t, err.Error(), c.value)
		})
	}
}

func TestNewAcceptsEdges(t *testing.T) {
	for _, c := range []struct {
		name      string
		cfg       Config
		blockSize int
		total     int
	}{
		{"zero Config", Config{}, DefaultBlockSize, 0},
		{"exactly one block", Config{MaxMemory: 4096, BlockSize: 4096}, 4096, 1},
		{"exactly one default block", Config{MaxMemory: DefaultBlockSize}, DefaultBlockSize, 1},
		{"a whole number of odd-sized blocks", Config{MaxMemory: 3 * 1000, BlockSize: 1000}, 1000, 3},
		{"BlockSize at MaxBlockSize, unlimited", Config{BlockSize: MaxBlockSize}, MaxBlockSize, 0},
		{"block of one byte", Config{MaxMemory: 10, BlockSize: 1}, 1, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := New(c.cfg)
			require.NoError(t, err)
			require.NotNil(t, p)
			checkNoLeak(t, p)
			assert.Equal(t, freshStats(c.blockSize, c.total), p.Stats())
		})
	}
}

func TestNewDefaultsUnlimited4K(t *testing.T) {
	p, err := New(Config{})
	require.NoError(t, err)
	checkNoLeak(t, p)
	s := p.Stats()
	assert.Equal(t, 4096, s.BlockSize)
	assert.Equal(t, 0, s.BlocksTotal, "the zero Config is unlimited")

	// Unlimited: a write far larger than any first slab succeeds at once.
	b := p.NewBytes(0)
	defer b.Free()
	data := fill(3<<20+5, 3)
	within(t, "a large write to an unlimited pool", func() {
		n, err := b.Write(data)
		assert.NoError(t, err)
		assert.Equal(t, len(data), n)
	})
	assert.Equal(t, (len(data)+4095)/4096, p.Stats().BlocksInUse)
	assert.Equal(t, data, readAll(t, b))
}

// panicMessage runs f and returns what it panicked with, as a string.
func panicMessage(t *testing.T, f func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		require.NotNil(t, r, "expected a panic")
		s, ok := r.(string)
		if !ok {
			if err, isErr := r.(error); isErr {
				s = err.Error()
			} else {
				t.Fatalf("panic value %#v is neither a string nor an error", r)
			}
		}
		msg = s
	}()
	f()
	return ""
}

func TestNewBytesPoolPanicsNamingTheArgument(t *testing.T) {
	for _, c := range []struct {
		maxMemory, blockSize int
		arg, value           string
	}{
		{1 << 20, 0, "blockSize", "0"},
		{0, 0, "blockSize", "0"},
		{1 << 20, -1, "blockSize", "-1"},
		{0, -4096, "blockSize", "-4096"},
		{0, MaxBlockSize + 1, "blockSize", strconv.Itoa(MaxBlockSize + 1)},
		{-1, 4096, "maxMemory", "-1"},
		{-1 << 30, 4096, "maxMemory", strconv.Itoa(-1 << 30)},
		{100, 4096, "maxMemory", "100"},
		{4095, 4096, "maxMemory", "4095"},
		{10000, 4096, "maxMemory", "10000"},
	} {
		t.Run(fmt.Sprintf("NewBytesPool(%d,%d)", c.maxMemory, c.blockSize), func(t *testing.T) {
			msg := panicMessage(t, func() { NewBytesPool(c.maxMemory, c.blockSize) })
			assert.Contains(t, msg, "NewBytesPool")
			assert.Contains(t, msg, c.arg, "the message must name the argument")
			assert.Contains(t, msg, c.value)
		})
	}
}

// The zero BytesPool has no arena: its methods panic with a message that
// says how to make a pool, not with a nil dereference deep inside.
func TestZeroBytesPoolPanicsSayingHowToMakeOne(t *testing.T) {
	var zero BytesPool
	var nilPool *BytesPool
	for name, f := range map[string]func(){
		"NewBytes":     func() { zero.NewBytes(0) },
		"NewPipe":      func() { zero.NewPipe(0) },
		"Stats":        func() { zero.Stats() },
		"nil NewBytes": func() { nilPool.NewBytes(0) },
	} {
		t.Run(name, func(t *testing.T) {
			msg := panicMessage(t, f)
			assert.Contains(t, msg, "New or NewBytesPool")
		})
	}
}

// An arena beyond the address space is a panic naming maxMemory, never a
// runtime error or a fatal one.
func TestNewBytesPoolHugePanicsNamingMaxMemory(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("needs a 64-bit int")
	}
	for _, mem := range []int{1 << 48, 1 << 61} {
		msg := panicMessage(t, func() { NewBytesPool(mem, 1<<30) })
		assert.Contains(t, msg, "maxMemory")
		assert.Contains(t, msg, strconv.Itoa(mem))
	}
}

func TestNewBytesNegativeMaxLenPanics(t *testing.T) {
	p := testPool(t, 1<<16, 1024)
	for _, maxLen := range []int{-1, -1 << 40} {
		msg := panicMessage(t, func() { p.NewBytes(maxLen) })
		assert.Contains(t, msg, "maxLen")
		assert.Contains(t, msg, strconv.Itoa(maxLen))
	}
	// The panics left the pool intact.
	b := p.NewBytes(0)
	defer b.Free()
	n, err := b.WriteString("ok")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

// ---------------------------------------------------------------------------
// Stats

// freshStats returns the Stats of a pool of total blocks of bs bytes that
// has done nothing yet: a mapped arena has reserved all of a limited pool's
// address space, a heap arena nothing yet.
func freshStats(bs, total int) Stats {
	s := Stats{BlockSize: bs, BlocksTotal: total, ArenaInHeap: !slab.Mapped}
	if slab.Mapped {
		s.ArenaBytes = bs * total
	}
	return s
}

func TestStatsLazyAllocation(t *testing.T) {
	// One shard: the reuse below must find the blocks the first Bytes
	// freed even if the second Bytes gets a new header on another shard
	// (under -race, sync.Pool drops headers and shard tokens at random).
	p := onePoolShard(t, 100*4096, 4096)
	assert.Equal(t, freshStats(4096, 100), p.Stats(), "a fresh pool has carved nothing")

	b := p.NewBytes(0)
	n, err := b.Write(fill(2*4096+1, 1)) // 3 blocks
	require.NoError(t, err)
	require.Equal(t, 2*4096+1, n)
	s := p.Stats()
	assert.Equal(t, 3, s.BlocksInUse)
	assert.Equal(t, 3, s.BlocksAllocated)
	assert.Equal(t, 100, s.BlocksTotal)
	assert.Equal(t, 0, s.Waiters)
	assert.Equal(t, uint64(0), s.Waits)

	buf := make([]byte, 4096)
	n, err = b.Read(buf) // the first block is fully read and goes back
	require.NoError(t, err)
	require.Equal(t, 4096, n)
	s = p.Stats()
	assert.Equal(t, 2, s.BlocksInUse)
	assert.Equal(t, 3, s.BlocksAllocated)

	b.Free()
	s = p.Stats()
	assert.Equal(t, 0, s.BlocksInUse)
	assert.Equal(t, 3, s.BlocksAllocated, "carved blocks are kept for reuse")

	// Reuse: the same amount again carves nothing new.
	b = p.NewBytes(0)
	_, err = b.Write(fill(3*4096, 2))
	require.NoError(t, err)
	assert.Equal(t, 3, p.Stats().BlocksInUse)
	assert.Equal(t, 3, p.Stats().BlocksAllocated)
	b.Free()
}

func TestStatsUnlimitedGrowsAcrossSlabs(t *testing.T) {
	p, err := New(Config{})
	require.NoError(t, err)
	checkNoLeak(t, p)
	const blocks = 1000
	data := fill(blocks*4096, 9)

	b := p.NewBytes(0)
	n, err := b.Write(data)
	require.NoError(t, err)
	require.Equal(t, len(data), n)
	s := p.Stats()
	assert.Equal(t, 0, s.BlocksTotal)
	assert.Equal(t, blocks, s.BlocksInUse)
	assert.Equal(t, blocks, s.BlocksAllocated)
	assert.GreaterOrEqual(t, p.arena.Slabs(), 3, "1000 blocks of 4 KiB span several slabs")

	// A second Bytes grows the arena further while the first holds its blocks.
	b2 := p.NewBytes(0)
	_, err = b2.Write(data[:blocks/2*4096])
	require.NoError(t, err)
	assert.Equal(t, blocks+blocks/2, p.Stats().BlocksInUse)
	assert.Equal(t, blocks+blocks/2, p.Stats().BlocksAllocated)

	assert.Equal(t, data, readAll(t, b))
	assert.Equal(t, blocks/2, p.Stats().BlocksInUse)
	assert.Equal(t, data[:blocks/2*4096], readAll(t, b2))
	assert.Equal(t, 0, p.Stats().BlocksInUse)
	b.Free()
	b2.Free()

	// Everything came back, and is reused rather than carved again.
	b = p.NewBytes(0)
	_, err = b.Write(data)
	require.NoError(t, err)
	assert.Equal(t, blocks+blocks/2, p.Stats().BlocksAllocated)
	assert.Equal(t, data, readAll(t, b))
	b.Free()
}

// ---------------------------------------------------------------------------
// The hard cap under load

func TestHardCapUnderLoad(t *testing.T) {
	const (
		bs      = 64
		total   = 64
		workers = 8
	)
	ops := 3000
	if testing.Short() {
		ops = 300
	}
	p := testPool(t, total*bs, bs)

	stop := make(chan struct{})
	var samples atomic.Int64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := p.Stats()
			samples.Inc()
			if !assert.LessOrEqual(t, s.BlocksInUse, s.BlocksTotal, "cap exceeded: %+v", s) ||
				!assert.GreaterOrEqual(t, s.BlocksInUse, 0, "more blocks returned than taken: %+v", s) ||
				!assert.LessOrEqual(t, s.BlocksAllocated, s.BlocksTotal, "carved past the cap: %+v", s) ||
				!assert.LessOrEqual(t, s.Waiters, workers, "%+v", s) {
				return
			}
		}
	}()

	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			b := p.NewBytes(0)
			defer func() { b.Free() }()
			var model []byte // what b holds
			seed := byte(g * 31)
			for op := range ops {
				switch {
				case rng.IntN(60) == 0:
					b.Free()
					b = p.NewBytes(0)
					model = model[:0]
				case rng.IntN(40) == 0:
					b.Reset()
					model = model[:0]
				case len(model) <= 4*bs:
					// Write while holding at most 6 blocks: with 8 workers
					// at most 48 blocks are held by waiters, so the head of
					// the queue (at most 16 blocks) can always be served.
					data := fill(1+rng.IntN(16*bs), seed+byte(op))
					var n int
					var err error
					switch rng.IntN(4) {
					case 0:
						n, err = b.Write(data)
					case 1:
						n, err = b.WriteString(string(data))
					case 2:
						data = data[:1]
						err = b.WriteByte(data[0])
						n = 1
					case 3:
						ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(200))*time.Microsecond)
						n, err = b.WriteContext(ctx, data)
						cancel()
						if errors.Is(err, context.DeadlineExceeded) {
							if !assert.Equal(t, 0, n) || !assert.Equal(t, len(model), b.Len()) {
								return
							}
							continue
						}
					}
					if !assert.NoError(t, err) || !assert.Equal(t, len(data), n) {
						return
					}
					model = append(model, data...)
				default:
					buf := make([]byte, 1+rng.IntN(8*bs))
					n, err := b.Read(buf)
					want := min(len(buf), len(model))
					if !assert.NoError(t, err) || !assert.Equal(t, want, n) ||
						!assert.Equal(t, model[:want], buf[:n], "worker %d read other data", g) {
						return
					}
					model = model[want:]
				}
				if !assert.Equal(t, len(model), b.Len()) {
					return
				}
			}
			got, err := io.ReadAll(b)
			assert.NoError(t, err)
			assert.Equal(t, model, got)
		}()
	}
	within(t, "the workers", wg.Wait)
	close(stop)
	sampler.Wait()
	assert.Positive(t, samples.Load())
	s := p.Stats()
	assert.Equal(t, 0, s.BlocksInUse)
	assert.LessOrEqual(t, s.BlocksAllocated, total)
}

// ---------------------------------------------------------------------------
// Blocking and waking

func TestWriteBlocksUntilBlocksAreFreed(t *testing.T) {
	const bs = 16
	p := testPool(t, 4*bs, bs)
	holder := p.NewBytes(0)
	defer holder.Free()
	held := fill(4*bs, 1)
	_, err := holder.Write(held)
	require.NoError(t, err)

	b := p.NewBytes(0)
	defer b.Free()
	data := fill(2*bs, 100)
	ch := parkedWrite(t, p, b, data, 1)
	s := p.Stats()
	assert.Equal(t, 4, s.BlocksInUse)
	assert.Equal(t, 1, s.Waiters)
	assert.Equal(t, 0, b.Len(), "a waiting write has written nothing")

	// One block back is not enough for a write that needs two.
	buf := make([]byte, bs)
	n, err := holder.Read(buf)
	require.NoError(t, err)
	require.Equal(t, bs, n)
	assert.Equal(t, held[:bs], buf)
	assert.Equal(t, 1, p.Stats().Waiters)
	assert.True(t, stillRunning(ch))

	n, err = holder.Read(buf)
	require.NoError(t, err)
	require.Equal(t, bs, n)
	r := await(t, "the parked write", ch)
	require.NoError(t, r.err)
	assert.Equal(t, int64(2*bs), r.n)
	s = p.Stats()
	assert.Equal(t, 4, s.BlocksInUse)
	assert.Equal(t, 0, s.Waiters)
	assert.Equal(t, uint64(1), s.Waits)
	assert.Positive(t, s.WaitTime)
	assert.Equal(t, data, readAll(t, b))
	assert.Equal(t, held[2*bs:], readAll(t, holder))
}

func TestWriteContextCancelLeaksNothing(t *testing.T) {
	const bs = 16
	p := testPool(t, 5*bs, bs)
	b := p.NewBytes(0)
	defer b.Free()
	head := fill(5, 7)
	_, err := b.Write(head) // one block, 11 bytes of room
	require.NoError(t, err)
	hs := holdBlocks(t, p, 4)
	defer func() {
		for _, h := range hs {
			h.Free()
		}
	}()
	before := p.Stats()
	require.Equal(t, 5, before.BlocksInUse)

	ctx, cancel := context.WithCancel(context.Background())
	data := fill(40, 50) // room 11 + 2 new blocks
	ch := async(func() (int64, error) {
		n, err := b.WriteContext(ctx, data)
		return int64(n), err
	})
	time.Sleep(settle)
	waitWaiters(t, p, 1)
	require.True(t, stillRunning(ch))
	cancel()
	r := await(t, "the cancelled write", ch)
	assert.Equal(t, int64(0), r.n)
	assert.ErrorIs(t, r.err, context.Canceled)
	s := p.Stats()
	assert.Equal(t, before.BlocksInUse, s.BlocksInUse)
	assert.Equal(t, 0, s.Waiters)
	assert.Equal(t, len(head), b.Len(), "a cancelled write writes nothing")

	// b is still usable, and the same write goes through once blocks are free.
	hs[0].Free()
	hs[1].Free()
	hs = hs[2:]
	within(t, "a write with blocks free", func() {
		n, err := b.Write(data)
		assert.NoError(t, err)
		assert.Equal(t, len(data), n)
	})
	assert.Equal(t, append(append([]byte{}, head...), data...), readAll(t, b))
}

func TestWriteContextDeadline(t *testing.T) {
	const bs = 16
	p := testPool(t, 2*bs, bs)
	hs := holdBlocks(t, p, 2)
	defer hs[0].Free()
	defer hs[1].Free()

	b := p.NewBytes(0)
	defer b.Free()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var n int
	var err error
	within(t, "a write with a deadline", func() { n, err = b.WriteContext(ctx, []byte("x")) })
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 0, b.Len())
	s := p.Stats()
	assert.Equal(t, 2, s.BlocksInUse)
	assert.Equal(t, 0, s.Waiters)
}

func TestWriteContextAlreadyCancelledDoesNotWait(t *testing.T) {
	const bs = 16
	p := testPool(t, 2*bs, bs)
	hs := holdBlocks(t, p, 2)
	defer hs[0].Free()
	defer hs[1].Free()
	b := p.NewBytes(0)
	defer b.Free()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var n int
	var err error
	within(t, "a write with a cancelled context", func() { n, err = b.WriteContext(ctx, []byte("x")) })
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 2, p.Stats().BlocksInUse)
	assert.Equal(t, 0, p.Stats().Waiters)
}

// A cancelled waiter at the head of the queue must let the ones behind it go.
func TestCancelledHeadLetsNextGo(t *testing.T) {
	const bs = 16
	p := testPool(t, 10*bs, bs)
	hs := holdBlocks(t, p, 10)
	defer func() {
		for _, h := range hs {
			h.Free()
		}
	}()

	a := p.NewBytes(0)
	defer a.Free()
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	chA := async(func() (int64, error) {
		n, err := a.WriteContext(ctxA, fill(8*bs, 1))
		return int64(n), err
	})
	time.Sleep(settle)
	waitWaiters(t, p, 1)

	b := p.NewBytes(0)
	defer b.Free()
	dataB := fill(bs, 2)
	chB := parkedWrite(t, p, b, dataB, 2)

	// One block is free, enough for B, but A is ahead of it.
	hs[0].Free()
	hs = hs[1:]
	assert.Equal(t, 2, p.Stats().Waiters)
	assert.True(t, stillRunning(chB), "B overtook A")
	assert.True(t, stillRunning(chA))

	cancelA()
	rA := await(t, "A", chA)
	assert.Equal(t, int64(0), rA.n)
	assert.ErrorIs(t, rA.err, context.Canceled)
	rB := await(t, "B, once A gave up", chB)
	require.NoError(t, rB.err)
	assert.Equal(t, int64(bs), rB.n)
	assert.Equal(t, 0, a.Len())
	assert.Equal(t, dataB, readAll(t, b))
	assert.Equal(t, 0, p.Stats().Waiters)
	assert.Equal(t, 9, p.Stats().BlocksInUse)
}

func TestFreeWakesWaitingWriter(t *testing.T) {
	for _, how := range []string{"Free", "Close"} {
		t.Run(how, func(t *testing.T) {
			const bs = 16
			p := testPool(t, 2*bs, bs)
			hs := holdBlocks(t, p, 2)
			defer hs[0].Free()
			defer hs[1].Free()

			b := p.NewBytes(0)
			ch := parkedWrite(t, p, b, fill(bs, 1), 1)
			if how == "Free" {
				within(t, "Free", b.Free)
			} else {
				within(t, "Close", func() { assert.NoError(t, b.Close()) })
			}
			r := await(t, "the woken write", ch)
			assert.Equal(t, int64(0), r.n)
			assert.ErrorIs(t, r.err, ErrClosed)
			s := p.Stats()
			assert.Equal(t, 0, s.Waiters)
			assert.Equal(t, 2, s.BlocksInUse)
		})
	}
}

func TestFreeWakesWaitingReadFrom(t *testing.T) {
	const bs = 16
	p := testPool(t, 2*bs, bs)
	hs := holdBlocks(t, p, 2)
	defer hs[0].Free()
	defer hs[1].Free()

	b := p.NewBytes(0)
	src := strings.NewReader("data that never gets in")
	ch := async(func() (int64, error) { return b.ReadFrom(noLen{src}) })
	time.Sleep(settle)
	waitWaiters(t, p, 1)
	require.True(t, stillRunning(ch))
	b.Free()
	r := await(t, "the woken ReadFrom", ch)
	assert.Equal(t, int64(0), r.n)
	assert.ErrorIs(t, r.err, ErrClosed)
	assert.Equal(t, 23-bs, src.Len(), "ReadFrom read a first piece, then waited for a block for it")
	assert.Equal(t, 0, p.Stats().Waiters)
	assert.Equal(t, 2, p.Stats().BlocksInUse)
}

// Free racing with a writer that is about to queue: whatever the timing,
// the writer must return ErrClosed, not wait for blocks nobody will free.
func TestFreeRacingWaitWakesWriter(t *testing.T) {
	const bs = 16
	rounds := 3000
	if testing.Short() {
		rounds = 300
	}
	p := testPool(t, 2*bs, bs)
	hs := holdBlocks(t, p, 2)
	defer hs[0].Free()
	defer hs[1].Free()
	rng := rand.New(rand.NewPCG(1, 2))
	data := fill(bs, 5)
	for i := range rounds {
		b := p.NewBytes(0)
		ch := asyncWrite(b, data)
		for range rng.IntN(4) {
			runtime.Gosched()
		}
		b.Free()
		select {
		case r := <-ch:
			require.Equal(t, int64(0), r.n, "round %d", i)
			require.ErrorIs(t, r.err, ErrClosed, "round %d", i)
		case <-time.After(waitTimeout):
			t.Fatalf("round %d: a Write on a Bytes freed while it was queuing still waits for blocks (Stats %+v)", i, p.Stats())
		}
	}
	assert.Equal(t, 0, p.Stats().Waiters)
	assert.Equal(t, 2, p.Stats().BlocksInUse)
}

// A writer woken by Free (or granted just before it) must never touch the
// header after Free handed it back: NewBytes may reissue it at once.
func TestFreedWriterNeverTouchesReissuedHeader(t *testing.T) {
	const bs = 16
	rounds := 2000
	if testing.Short() {
		rounds = 200
	}
	p := testPool(t, 2*bs, bs)
	hs := holdBlocks(t, p, 2)
	defer func() {
		for _, h := range hs {
			h.Free()
		}
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	data := fill(bs, 0x77)
	for i := range rounds {
		b := p.NewBytes(0)
		// The write must be in flight before Free: a call that starts
		// after Free is the caller's use-after-Free bug.
		ch := asyncWrite(b, data)
		waitWaiters(t, p, 1)
		for range rng.IntN(4) {
			runtime.Gosched()
		}
		// Race a grant (a holder frees a block) against Free. In every
		// other round the grant starts first, so that the writer often
		// wakes with its block to find b freed: it must give the block's
		// reservation back without touching b.
		freed := make(chan struct{})
		grant := func() {
			hs[0].Free()
			close(freed)
		}
		if i%2 == 0 {
			grant()
		} else {
			go grant()
		}
		b.Free()
		b2 := p.NewBytes(0) // often the same header
		r := await(t, "the writer", ch)
		if r.err == nil {
			require.Equal(t, int64(bs), r.n, "round %d", i)
		} else {
			require.ErrorIs(t, r.err, ErrClosed, "round %d", i)
			require.Equal(t, int64(0), r.n, "round %d", i)
		}
		require.Equal(t, 0, b2.Len(), "round %d: the old writer wrote into the reissued header", i)
		_, err := b2.ReadByte()
		require.Equal(t, io.EOF, err, "round %d", i)
		b2.Free()
		<-freed
		require.Equal(t, 1, p.Stats().BlocksInUse, "round %d: %+v", i, p.Stats())
		hs[0] = p.NewBytes(0)
		_, err = hs[0].Write(data)
		require.NoError(t, err)
	}
	assert.Equal(t, 0, p.Stats().Waiters)
	assert.Equal(t, 2, p.Stats().BlocksInUse)
}

func TestTwoWritersNeedingMostOfThePool(t *testing.T) {
	const bs = 32
	rounds := 500
	if testing.Short() {
		rounds = 50
	}
	p := testPool(t, 10*bs, bs)
	var wg sync.WaitGroup
	var completed atomic.Int64
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				data := fill(8*bs, byte(g*100+i))
				b := p.NewBytes(0)
				n, err := b.Write(data)
				if !assert.NoError(t, err) || !assert.Equal(t, len(data), n) {
					b.Free()
					return
				}
				if i%10 == 0 {
					got, err := io.ReadAll(b)
					assert.NoError(t, err)
					assert.Equal(t, data, got)
				}
				b.Free()
				completed.Inc()
			}
		}()
	}
	within(t, "two writers each needing 8 of 10 blocks", wg.Wait)
	assert.Equal(t, int64(2*rounds), completed.Load())
	assert.Equal(t, 0, p.Stats().BlocksInUse)
}

// FIFO: a later small write does not overtake an earlier large one.
func TestWaitersServedInArrivalOrder(t *testing.T) {
	const bs = 16
	p := testPool(t, 10*bs, bs)
	hs := holdBlocks(t, p, 9)
	defer func() {
		for _, h := range hs {
			h.Free()
		}
	}()

	var order []string
	var mu sync.Mutex
	record := func(who string, ch <-chan result) <-chan result {
		out := make(chan result, 1)
		go func() {
			r := <-ch
			mu.Lock()
			order = append(order, who)
			mu.Unlock()
			out <- r
		}()
		return out
	}

	a := p.NewBytes(0)
	defer a.Free()
	dataA := fill(5*bs, 1)
	chA := record("A", parkedWrite(t, p, a, dataA, 1))

	b := p.NewBytes(0)
	defer b.Free()
	dataB := fill(bs, 2)
	// One block is free: B would fit at once if it could jump the queue.
	chB := record("B", asyncWrite(b, dataB))
	time.Sleep(settle)
	require.Eventually(t, func() bool { return p.Stats().Waiters == 2 || !stillRunning(chB) },
		waitTimeout, time.Millisecond)
	require.True(t, stillRunning(chB), "the small write B overtook the waiting large write A")

	// Two blocks free: still not enough for A, and B stays behind it.
	hs[0].Free()
	assert.Equal(t, 2, p.Stats().Waiters)
	// Five blocks free: A is served, B (needing one more) waits.
	hs[1].Free()
	hs[2].Free()
	hs[3].Free()
	rA := await(t, "A", chA)
	require.NoError(t, rA.err)
	assert.Equal(t, int64(5*bs), rA.n)
	assert.Equal(t, 1, p.Stats().Waiters)
	assert.True(t, stillRunning(chB), "B was served without a free block")

	hs[4].Free()
	hs = hs[5:]
	rB := await(t, "B", chB)
	require.NoError(t, rB.err)
	assert.Equal(t, int64(bs), rB.n)

	mu.Lock()
	assert.Equal(t, []string{"A", "B"}, order)
	mu.Unlock()
	assert.Equal(t, dataA, readAll(t, a))
	assert.Equal(t, dataB, readAll(t, b))
}

// ---------------------------------------------------------------------------
// Reclaiming forgotten Bytes

//go:noinline
func writeAndForget(t *testing.T, p *BytesPool, n int) {
	b := p.NewBytes(0)
	k, err := b.Write(fill(n, 4))
	require.NoError(t, err)
	require.Equal(t, n, k)
}

func TestForgottenBytesReclaimedAfterGC(t *testing.T) {
	const bs = 64
	p := testPool(t, 16*bs, bs)
	writeAndForget(t, p, 3*bs)
	assert.Equal(t, 3, p.Stats().BlocksAllocated, "the forgotten Bytes did write")
	require.Eventually(t, func() bool {
		runtime.GC()
		return p.Stats().BlocksInUse == 0
	}, waitTimeout, 10*time.Millisecond, "the blocks of a forgotten Bytes were not reclaimed")

	// The pool is whole: all 16 blocks can be held again.
	b := p.NewBytes(0)
	defer b.Free()
	within(t, "writing the whole pool", func() {
		_, err := b.Write(fill(16*bs, 5))
		assert.NoError(t, err)
	})
	assert.Equal(t, 16, p.Stats().BlocksInUse)
}

// ---------------------------------------------------------------------------
// Letting go of a pool

// usePool makes a pool of 16 blocks of 64 bytes and runs use on it. It
// returns a func that reports whether the pool is gone, and with it the
// lists of its slab, whose links a chain points into (they are in the
// heap only where the arena is: see slab.Arena.Meta); the caller holds no
// reference to either.
//
//go:noinline
func usePool(t *testing.T, use func(*testing.T, *BytesPool)) (gone func() bool) {
	p, err := New(Config{MaxMemory: 16 * 64, BlockSize: 64})
	require.NoError(t, err)
	use(t, p)
	wp := weak.Make(p)
	var wl weak.Pointer[slabLists] // none if use carved no block: slabs' lists come with their first block
	var wm weak.Pointer[link]      // the links, where they are on the heap
	if sl := p.slabs[0].Load(); sl != nil {
		wl = weak.Make(sl)
		if !slab.Mapped {
			wm = weak.Make(&sl.links[0])
		}
	}
	return func() bool { return wp.Value() == nil && wl.Value() == nil && wm.Value() == nil }
}

// TestPoolCollectedOnceUnreachable checks that a pool nobody refers to any
// more is collected by the next garbage collection, whatever its Bytes did
// before they were freed. A freed header waits in the pool's header cache,
// and the runtime keeps a sync.Pool through the next collection; when a
// freed header still reached its pool, every pool outlived two collections,
// and a loop that made and dropped pools grew the heap without bound (by
// about 1.6 times per collection: 23 GiB after 35,000 pools of 1 MiB).
//
// What the garbage collector reclaims itself, a forgotten Bytes or a
// pipe's ends (closed or not), keeps the pool until its cleanup or
// finalizer has run, after the first collection; those uses only need the
// pool to go eventually.
func TestPoolCollectedOnceUnreachable(t *testing.T) {
	data := fill(5*64, 1)
	uses := []struct {
		name      string
		use       func(*testing.T, *BytesPool)
		reclaimed bool // the garbage collector has something to reclaim first
	}{
		{"unused", func(*testing.T, *BytesPool) {}, false},
		{"Free", func(t *testing.T, p *BytesPool) {
			b := p.NewBytes(0)
			writeAll(t, b, data)
			b.Free()
		}, false},
		{"reissued headers", func(t *testing.T, p *BytesPool) {
			a, b := p.NewBytes(0), p.NewBytes(0)
			writeAll(t, a, data)
			a.Free()
			c := p.NewBytes(0)
			writeAll(t, c, data)
			assert.Equal(t, data, readAll(t, c))
			require.NoError(t, c.Close())
			b.Free()
		}, false},
		{"ReadFrom, WriteTo, Reset", func(t *testing.T, p *BytesPool) {
			b := p.NewBytes(0)
			n, err := b.ReadFrom(bytes.NewReader(data))
			require.NoError(t, err)
			require.Equal(t, int64(len(data)), n)
			var out bytes.Buffer
			n, err = b.WriteTo(&out)
			require.NoError(t, err)
			require.Equal(t, int64(len(data)), n)
			writeAll(t, b, data)
			b.Reset()
			b.Free()
		}, false},
		{"Free of a waiting writer", func(t *testing.T, p *BytesPool) {
			full, b := p.NewBytes(0), p.NewBytes(0)
			writeAll(t, full, fill(16*64, 2))
			ch := parkedWrite(t, p, b, data, 1)
			b.Free()
			assert.ErrorIs(t, await(t, "the waiting write", ch).err, ErrClosed)
			full.Free()
		}, false},
		{"forgotten Bytes", func(t *testing.T, p *BytesPool) {
			writeAndForget(t, p, len(data))
		}, true},
		{"pipe", func(t *testing.T, p *BytesPool) {
			r, w := p.NewPipe(0)
			n, err := w.Write(data)
			require.NoError(t, err)
			require.Equal(t, len(data), n)
			require.NoError(t, w.Close())
			require.NoError(t, r.Close())
		}, true},
	}
	for _, u := range uses {
		t.Run(u.name, func(t *testing.T) {
			gone := usePool(t, u.use)
			runtime.GC()
			if u.reclaimed {
				eventually(t, func() bool {
					runtime.GC()
					return gone()
				}, "the pool was never collected")
				return
			}
			assert.True(t, gone(), "the pool outlived a garbage collection")
		})
	}
}

// ---------------------------------------------------------------------------
// Zero on free

func allBlocks(p *BytesPool, f func(blk []byte) bool) bool {
	for i := range p.arena.Carved() {
		if !f(p.arena.Block(uint32(i))) {
			return false
		}
	}
	return true
}

func isAll(blk []byte, v byte) bool {
	for _, c := range blk {
		if c != v {
			return false
		}
	}
	return true
}

func TestZeroOnFree(t *testing.T) {
	const bs = 64
	ff := make([]byte, 4*bs)
	for i := range ff {
		ff[i] = 0xFF
	}
	for _, how := range []string{"Free", "Read", "ReadByte", "Reset", "WriteTo", "ReadFrom"} {
		t.Run(how, func(t *testing.T) {
			p, err := New(Config{MaxMemory: 4 * bs, BlockSize: bs, ZeroOnFree: true})
			require.NoError(t, err)
			checkNoLeak(t, p)
			b := p.NewBytes(0)
			defer b.Free()
			if how == "ReadFrom" {
				n, err := b.ReadFrom(strings.NewReader(string(ff)))
				require.NoError(t, err)
				require.Equal(t, int64(len(ff)), n)
			} else {
				_, err = b.Write(ff)
				require.NoError(t, err)
			}
			require.Equal(t, 4, p.Stats().BlocksAllocated)
			require.True(t, allBlocks(p, func(blk []byte) bool { return isAll(blk, 0xFF) }), "the blocks hold the data")
			switch how {
			case "Free", "ReadFrom":
				b.Free()
			case "Read":
				assert.Equal(t, ff, readAll(t, b))
			case "ReadByte": // block by block: the first goes to the hot slot
				for range ff {
					c, err := b.ReadByte()
					require.NoError(t, err)
					require.Equal(t, byte(0xFF), c)
				}
				_, hot := hotBlock(p, b.st.c.shard)
				require.True(t, hot)
			case "Reset":
				b.Reset()
			case "WriteTo":
				_, err := b.WriteTo(io.Discard)
				require.NoError(t, err)
			}
			require.Equal(t, 0, p.Stats().BlocksInUse)
			assert.True(t, allBlocks(p, func(blk []byte) bool { return isAll(blk, 0) }), "a freed block was not wiped")
		})
	}
}

// A pipe's writer that filled a block it then cannot publish, because the
// reader closed meanwhile, gives the block back wiped.
func TestZeroOnFreePipeBlockNotPublished(t *testing.T) {
	const bs = 64
	p, err := New(Config{MaxMemory: 4 * bs, BlockSize: bs, ZeroOnFree: true})
	require.NoError(t, err)
	checkNoLeak(t, p)
	pr, pw := p.NewPipe(0)
	defer pw.Close()
	// One byte first, so that ReadFrom reads straight into the block:
	// at a block boundary it reads into its small buffer and takes no
	// block before bytes come.
	_, err = pw.Write([]byte{0})
	require.NoError(t, err)
	n, err := pw.ReadFrom(readerFunc(func(q []byte) (int, error) {
		for i := range q {
			q[i] = 0xFF
		}
		require.NoError(t, pr.Close())
		return len(q), nil
	}))
	require.ErrorIs(t, err, io.ErrClosedPipe)
	assert.Equal(t, int64(0), n)
	require.Equal(t, 1, p.Stats().BlocksAllocated)
	require.Equal(t, 0, p.Stats().BlocksInUse)
	assert.True(t, allBlocks(p, func(blk []byte) bool { return isAll(blk, 0) }), "the block was not wiped")
}

// Without ZeroOnFree a freed block keeps its old bytes, but a reader only
// ever sees what was written to its own Bytes.
func TestNoZeroOnFreeNeverShowsStaleData(t *testing.T) {
	const bs = 64
	p := testPool(t, 4*bs, bs)
	b := p.NewBytes(0)
	ff := make([]byte, 4*bs)
	for i := range ff {
		ff[i] = 0xFF
	}
	_, err := b.Write(ff)
	require.NoError(t, err)
	b.Free()
	assert.True(t, allBlocks(p, func(blk []byte) bool { return isAll(blk, 0xFF) }),
		"without ZeroOnFree the block contents are left as they were")

	b = p.NewBytes(0)
	defer b.Free()
	require.NoError(t, b.WriteByte('a'))
	assert.Equal(t, 1, b.Len())
	buf := make([]byte, 2*bs)
	n, err := b.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, byte('a'), buf[0])
	n, err = b.Read(buf)
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err)

	// The same through ReadFrom with a short source, and WriteTo.
	_, err = b.ReadFrom(strings.NewReader("xyz"))
	require.NoError(t, err)
	var out strings.Builder
	n64, err := b.WriteTo(&out)
	require.NoError(t, err)
	assert.Equal(t, int64(3), n64)
	assert.Equal(t, "xyz", out.String())
}

// ---------------------------------------------------------------------------
// Allocations

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race sync.Pool drops Puts on purpose, so allocation counts are meaningless")
	}
	p := testPool(t, 1<<20, 4096)
	data := fill(1024, 1)
	buf := make([]byte, 1024)

	check := func(name string, f func()) {
		t.Helper()
		for range 100 {
			f()
		}
		allocs := testing.AllocsPerRun(1000, f)
		t.Logf("%s: %v allocs/op", name, allocs)
		assert.Equal(t, 0.0, allocs, "%s allocates", name)
	}

	check("NewBytes/Write(1 KiB)/Read/Free", func() {
		b := p.NewBytes(0)
		if n, err := b.Write(data); n != len(data) || err != nil {
			panic(err)
		}
		if n, err := b.Read(buf); n != len(buf) || err != nil {
			panic(err)
		}
		b.Free()
	})

	big := fill(64<<10, 2)
	check("NewBytes/Write(64 KiB)/WriteTo(io.Discard)/Free", func() {
		b := p.NewBytes(0)
		if _, err := b.Write(big); err != nil {
			panic(err)
		}
		if n, err := b.WriteTo(io.Discard); n != int64(len(big)) || err != nil {
			panic(err)
		}
		b.Free()
	})

	b := p.NewBytes(0)
	defer b.Free()
	check("Write(10 KiB)/WriteTo(io.Discard) on one Bytes", func() {
		if _, err := b.Write(big[:10<<10]); err != nil {
			panic(err)
		}
		if n, err := b.WriteTo(io.Discard); n != 10<<10 || err != nil {
			panic(err)
		}
	})

	r := bytes.NewReader(nil)
	src := big[:10<<10]
	check("ReadFrom(reused bytes.Reader)/Reset on one Bytes", func() {
		r.Reset(src)
		if n, err := b.ReadFrom(r); n != int64(len(src)) || err != nil {
			panic(err)
		}
		b.Reset()
	})

	check("WriteString/WriteByte/ReadByte", func() {
		if _, err := b.WriteString("hello"); err != nil {
			panic(err)
		}
		if err := b.WriteByte('!'); err != nil {
			panic(err)
		}
		for range 6 {
			if _, err := b.ReadByte(); err != nil {
				panic(err)
			}
		}
	})
}

func TestShardsFor(t *testing.T) {
	for procs, want := range map[int]int{1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 8: 8, 9: 8, 64: 8} {
		assert.Equal(t, want, shardsFor(procs), "shardsFor(%d)", procs)
	}
}

// TestShards checks that a Bytes gets back the blocks its home shard
// freed, and that a writer whose home shard is empty takes free blocks from
// the other shards: shards decide which free block a writer gets, never
// whether it gets one.
func TestShards(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	const bs = 64
	p := testPool(t, 4*bs, bs)
	require.Equal(t, 3, p.shardMask)

	// Four Bytes with four different home shards each take one block
	// and free it into their own shard.
	var bufs [4]*Bytes
	homes := map[int]bool{}
	blockOf := map[int]uint32{} // home shard -> the block it last freed
	for i := range bufs {
		bufs[i] = p.NewBytes(0)
		st := bufs[i].st
		st.c.shard = i // as if made on four Ps (see TestNewShardPerP)
		homes[st.c.shard] = true
		_, err := bufs[i].Write(bytes.Repeat([]byte{byte(i)}, bs))
		require.NoError(t, err)
		blockOf[st.c.shard] = st.c.head
	}
	require.Len(t, homes, 4)
	for _, b := range bufs {
		var out [bs]byte
		n, err := b.Read(out[:])
		require.NoError(t, err)
		require.Equal(t, bs, n)
	}
	assert.Equal(t, 0, p.Stats().BlocksInUse)

	// Each gets its own shard's block back.
	for _, b := range bufs {
		_, err := b.Write([]byte{1})
		require.NoError(t, err)
		st := b.st
		assert.Equal(t, blockOf[st.c.shard], st.c.head, "shard %d", st.c.shard)
		b.Reset()
	}

	// One writer needs all four blocks, one from each shard, and must
	// not wait for them.
	big := make([]byte, 4*bs)
	for i := range big {
		big[i] = byte(i)
	}
	var err error
	within(t, "a write of every block of the pool", func() {
		_, err = bufs[0].Write(big)
	})
	require.NoError(t, err)
	assert.Equal(t, 4, p.Stats().BlocksInUse)
	got, err := io.ReadAll(bufs[0])
	require.NoError(t, err)
	assert.Equal(t, big, got)
	assert.Equal(t, 4, p.Stats().BlocksAllocated, "no block carved twice")
	for _, b := range bufs {
		b.Free()
	}
}

// fourShardsOneP returns a pool of four shards and runs the rest of the
// test on one P, so that every sync.Pool Get and Put in it sees that P's
// items. It skips the test under -race, whose sync.Pool drops items at
// random, shard tokens too.
func fourShardsOneP(t *testing.T) *BytesPool {
	if raceEnabled {
		t.Skip("under -race sync.Pool drops items at random, tokens too")
	}
	prev := runtime.GOMAXPROCS(4)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	p := testPool(t, 64*16, 16)
	require.Equal(t, 3, p.shardMask)
	runtime.GOMAXPROCS(1)
	return p
}

// newHeaderShard returns the shard of a header that p makes now: it holds
// the free headers that NewBytes reissues on the way, until NewBytes makes
// one, then frees them all.
func newHeaderShard(p *BytesPool) int {
	var held []*Bytes
	defer func() {
		for _, b := range held {
			b.Free()
		}
	}()
	for {
		b := p.NewBytes(0)
		held = append(held, b)
		if b.st.uses == 1 {
			return b.st.c.shard
		}
	}
}

// The headers and pipes that one P makes share a home shard; a P that has
// made none takes the next shard in turn.
func TestNewShardPerP(t *testing.T) {
	p := fourShardsOneP(t)

	first := newHeaderShard(p)
	for range 7 {
		require.Equal(t, first, newHeaderShard(p), "headers made on one P")
	}
	r, w := p.NewPipe(16)
	assert.Equal(t, first, r.p.shard, "a pipe made on the same P")
	require.NoError(t, w.Close())
	require.NoError(t, r.Close())

	// Another P, with no token yet: the next shard.
	p.shardTokens = new(sync.Pool)
	second := newHeaderShard(p)
	assert.Equal(t, (first+1)&p.shardMask, second)
	assert.Equal(t, second, newHeaderShard(p))
}

// A P that keeps reissuing its headers keeps its token through garbage
// collections, so the next header it makes gets the same shard rather than
// the next one in turn; a header reissued on a P whose shard differs takes
// the P's shard at its next recheck; and a P whose token is gone draws one
// there.
func TestShardTokenKeptByReissues(t *testing.T) {
	p := fourShardsOneP(t)

	// issue reissues the P's free header until it has served n issues
	// in all, and returns it, free.
	issue := func(n uint32) *Bytes {
		for {
			b := p.NewBytes(0)
			b.Free()
			if b.st.uses >= n {
				return b
			}
		}
	}
	b := issue(1)
	first := b.st.c.shard
	draws := p.nextShard.Load()
	for k := uint32(1); k <= 3; k++ {
		issue(k * shardRecheck)
		runtime.GC() // sync.Pool drops what nobody took since the one before
	}
	assert.Equal(t, first, newHeaderShard(p), "a header made after three collections")
	assert.Equal(t, draws, p.nextShard.Load(), "no shard drawn in turn")

	// A header from another shard takes the P's at its next recheck.
	other := (first + 1) & p.shardMask
	b = issue(0)
	b.st.c.shard = other
	next := (b.st.uses/shardRecheck + 1) * shardRecheck
	issue(next - 1)
	require.Equal(t, other, b.st.c.shard, "before the recheck")
	issue(next)
	assert.Equal(t, first, b.st.c.shard, "at the recheck")

	// With its token gone, the P draws the next shard in turn at the
	// next recheck, once, as for its first header.
	p.shardTokens = new(sync.Pool)
	issue(next + shardRecheck)
	drawn := int(draws+1) & p.shardMask
	assert.Equal(t, drawn, b.st.c.shard)
	assert.Equal(t, drawn, newHeaderShard(p), "the token the recheck drew")
	assert.Equal(t, draws+1, p.nextShard.Load(), "one shard drawn in turn")
}

// ---------------------------------------------------------------------------
// Free runs

// onePoolShard makes a pool with a single shard, whose ring order a test
// can follow.
func onePoolShard(t *testing.T, maxMemory, blockSize int) *BytesPool {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	p := testPool(t, maxMemory, blockSize)
	require.Equal(t, 0, p.shardMask)
	return p
}

// seq returns the n block indices from first on.
func seq(first uint32, n int) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = first + uint32(i)
	}
	return s
}

// putBlocks gives the blocks idx back to the rings of the shard through a
// freer, in order, without releasing their reservations.
func putBlocks(p *BytesPool, idx []uint32, shard int) {
	f := freer{a: &p.allocator, shard: shard}
	for _, i := range idx {
		f.add(i)
	}
	f.flush()
}

// firstSlab returns the lists of slab 0 of p, making them if no block has
// been carved yet: the tests below file blocks in its rings by hand.
func firstSlab(p *BytesPool) *slabLists {
	p.addSlab(0)
	return p.slabs[0].Load()
}

// TestFreeRunsOrderAndSplit checks that a freer files consecutive blocks
// as one ring entry of at most 16 blocks, and that take hands them out in
// ring order, splitting the last entry it takes when that one is longer
// than needed and queueing the rest at the ring's tail.
func TestFreeRunsOrderAndSplit(t *testing.T) {
	p := onePoolShard(t, 64*16, 16)
	sl := firstSlab(p)
	require.Equal(t, uint(maxRunBits), sl.runBits)
	free := slices.Concat([]uint32{5, 6, 7, 9}, seq(20, 18), []uint32{40})
	putBlocks(p, free, 0)
	// 5-7 | 9 | 20-35 | 36-37 | 40
	require.Equal(t, 5, sl.rings[0].Len(), "one entry per run of at most 16")

	for _, step := range []struct {
		n    int
		want []uint32
	}{
		{2, []uint32{5, 6}},                                       // 7 goes to the tail
		{5, []uint32{9, 20, 21, 22, 23}},                          // 24-35 go to the tail
		{16, slices.Concat([]uint32{36, 37, 40, 7}, seq(24, 12))}, // exactly the rest
	} {
		dst := make([]uint32, step.n)
		require.Equal(t, step.n, sl.take(0, dst))
		require.Equal(t, step.want, dst)
	}
	assert.Equal(t, 0, sl.take(0, make([]uint32, 3)), "the ring is empty")
	assert.Equal(t, 0, sl.rings[0].Len())
}

// TestFreerFlushes checks that a freer given more runs than it queues
// files them all, in order.
func TestFreerFlushes(t *testing.T) {
	p := onePoolShard(t, 64*16, 16)
	var every2nd []uint32
	for i := uint32(0); i < 40; i += 2 {
		every2nd = append(every2nd, i)
	}
	sl := firstSlab(p)
	putBlocks(p, every2nd, 0) // 20 runs of one block
	require.Equal(t, len(every2nd), sl.rings[0].Len())
	dst := make([]uint32, len(every2nd))
	require.Equal(t, len(dst), sl.take(0, dst))
	assert.Equal(t, every2nd, dst)
}

// TestFreeRunsShortEntries checks runs in slabs whose entries have room for
// runs of 2 blocks, or of one, as in arenas of more than 1<<30 and 1<<31
// blocks.
func TestFreeRunsShortEntries(t *testing.T) {
	for bits, entries := range map[uint]int{1: 3, 0: 5} { // 3-4 | 5-6 | 7, or one per block
		p := onePoolShard(t, 64*16, 16)
		sl := firstSlab(p)
		sl.runBits = bits // the pool is fresh: no ring holds an entry yet
		putBlocks(p, seq(3, 5), 0)
		assert.Equal(t, entries, sl.rings[0].Len(), "runBits %d", bits)
		dst := make([]uint32, 5)
		require.Equal(t, 5, sl.take(0, dst), "runBits %d", bits)
		assert.Equal(t, seq(3, 5), dst, "runBits %d", bits)
	}
}

// TestFreeRunsAcrossSlabs checks that consecutive blocks on both sides of
// a slab boundary go to their own slabs' rings.
func TestFreeRunsAcrossSlabs(t *testing.T) {
	const b0 = 64 // an unlimited arena of 4 KiB blocks starts with 64 per slab
	p := onePoolShard(t, 0, 4096)
	p.addSlab(0)
	p.addSlab(1)
	sl0, sl1 := p.slabs[0].Load(), p.slabs[1].Load()
	require.Equal(t, uint32(b0), sl1.first)
	putBlocks(p, seq(b0-2, 4), 0)
	dst := make([]uint32, 4)
	require.Equal(t, 2, sl1.take(0, dst), "slab 1 holds its own two")
	assert.Equal(t, seq(b0, 2), dst[:2])
	require.Equal(t, 2, sl0.take(0, dst), "slab 0 holds its own two")
	assert.Equal(t, seq(b0-2, 2), dst[:2])
}

// TestRunBitsFor checks that a ring entry always has room for the index
// of any block of its slab beside its run length.
func TestRunBitsFor(t *testing.T) {
	for last, want := range map[uint32]uint{0: 4, 1: 4, 1<<28 - 1: 4, 1 << 28: 3, 1<<29 - 1: 3, 1<<30 - 1: 2, 1 << 30: 1, 1<<31 - 1: 1, 1 << 31: 0, math.MaxUint32: 0} {
		bits := runBitsFor(last)
		assert.Equal(t, want, bits, "runBitsFor(%d)", last)
		sl := slabLists{runBits: bits}
		longest := 1 << bits
		i, n := sl.run(sl.entry(last, longest))
		assert.Equal(t, last, i, "the longest run from block %d", last)
		assert.Equal(t, longest, n, "the longest run from block %d", last)
	}
}

// TestFreeRunsStress has goroutines take runs of random length from a
// small pool with several shards and put them back in pieces, sorted so
// that they form runs again: every take that needs fewer blocks than an
// entry holds splits it. No block may be handed out twice, and at the end
// every block must be back.
func TestFreeRunsStress(t *testing.T) {
	const total, workers = 64, 4
	rounds := 20000
	if testing.Short() {
		rounds = 2000
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	p := testPool(t, total*16, 16)
	require.Equal(t, 3, p.shardMask)
	held := make([]atomic.Bool, total)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			dst := make([]uint32, 16)
			for range rounds {
				k := 1 + rng.IntN(len(dst))
				shard := rng.IntN(4)
				if !p.sema.TryAcquire(uint64(k), shard) {
					runtime.Gosched()
					continue
				}
				got := dst[:k]
				p.getBlocks(got, shard)
				for _, i := range got {
					if i >= total || held[i].Swap(true) {
						t.Errorf("block %d handed out twice, or out of range", i)
						return
					}
				}
				slices.Sort(got)
				cut := rng.IntN(k + 1)
				for _, i := range got {
					held[i].Store(false)
				}
				// The first part goes back block by block, the
				// second a stretch of consecutive blocks at a time,
				// as a read gives back a run.
				f := freer{a: &p.allocator, shard: shard}
				for _, i := range got[:cut] {
					f.add(i)
				}
				f.done()
				f = freer{a: &p.allocator, shard: shard}
				for rest := got[cut:]; len(rest) > 0; {
					n := 1
					for n < len(rest) && rest[n] == rest[0]+uint32(n) {
						n++
					}
					f.addRun(rest[0], n)
					rest = rest[n:]
				}
				f.done()
			}
		}()
	}
	within(t, "the stress run", wg.Wait) // a lost block makes getBlocks spin
	require.Equal(t, 0, p.Stats().BlocksInUse)
	requireAllFree(t, p) // every block came back exactly once
}
