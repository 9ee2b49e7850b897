package bytespool

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hotBlock returns shard s's hot block, if it has one.
func hotBlock(p *BytesPool, s int) (uint32, bool) {
	v := p.local[s].hot.Load()
	return v - 1, v != 0
}

// A Bytes' lone freed block becomes its shard's hot block, counts as free
// in Stats, and is the block the next one-block write takes.
func TestHotBlockReusedFirst(t *testing.T) {
	const bs = 16
	p := onePoolShard(t, 8*bs, bs)
	b := p.NewBytes(0)
	defer b.Free()

	// Carve three blocks and free them as one run: no hot block.
	_, err := b.Write(fill(3*bs, 1))
	require.NoError(t, err)
	require.Equal(t, fill(3*bs, 1), readAll(t, b))
	_, ok := hotBlock(p, 0)
	require.False(t, ok, "three blocks freed at once go to the ring")

	// One block, written and read: it stays hot.
	require.NoError(t, b.WriteByte('x'))
	first := b.st.c.head
	c, err := b.ReadByte()
	require.NoError(t, err)
	require.Equal(t, byte('x'), c)
	hot, ok := hotBlock(p, 0)
	require.True(t, ok, "a lone freed block becomes the hot block")
	require.Equal(t, first, hot)
	s := p.Stats()
	assert.Equal(t, 0, s.BlocksInUse, "a hot block is free")
	assert.Equal(t, 3, s.BlocksAllocated)

	// The next write of one block takes it, ahead of the ring's older
	// blocks, and leaves the slot empty.
	_, err = b.WriteString("hello")
	require.NoError(t, err)
	assert.Equal(t, first, b.st.c.head)
	_, ok = hotBlock(p, 0)
	assert.False(t, ok)
	assert.Equal(t, 1, p.Stats().BlocksInUse)

	// A write of two blocks takes its blocks from the ring, not the slot;
	// the slot is refilled by the next lone free.
	b.Reset()
	hot, ok = hotBlock(p, 0)
	require.True(t, ok)
	_, err = b.Write(fill(2*bs, 2))
	require.NoError(t, err)
	_, ok = hotBlock(p, 0)
	assert.True(t, ok, "a write of several blocks leaves the hot block alone")
	assert.NotEqual(t, hot, b.st.c.head)

	// A write that finds the ring empty takes the hot block before it
	// carves fresh ones: 3 blocks carved so far, 2 held, 1 hot.
	c2 := p.NewBytes(0)
	defer c2.Free()
	_, err = c2.Write(fill(5*bs, 3))
	require.NoError(t, err)
	_, ok = hotBlock(p, 0)
	assert.False(t, ok, "the hot block was used before the arena")
	assert.Equal(t, 7, p.Stats().BlocksAllocated)
	assert.Equal(t, 7, p.Stats().BlocksInUse)
	b.Free()
	c2.Free()
	requireAllFree(t, p)
}

// A block in a hot slot never keeps a writer waiting: whatever waits for
// blocks in the pool's queue gets it, whichever shard it is on and whether
// it was put there before or after the writer queued.
func TestHotBlockGoesToWaiters(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	const bs = 16
	waiters := map[string]func(p *BytesPool) <-chan result{
		"Write": func(p *BytesPool) <-chan result {
			return asyncWrite(p.NewBytes(0), fill(2*bs, 1))
		},
		"ReadFrom": func(p *BytesPool) <-chan result {
			b := p.NewBytes(2 * bs)
			return async(func() (int64, error) { return b.ReadFrom(strings.NewReader(string(fill(2*bs, 1)))) })
		},
		"PipeWriter": func(p *BytesPool) <-chan result {
			_, w := p.NewPipe(2 * bs)
			return async(func() (int, error) { return w.Write(fill(2*bs, 1)) })
		},
	}
	for name, wait := range waiters {
		for _, order := range []string{"hot first", "queued first"} {
			t.Run(name+"/"+order, func(t *testing.T) {
				p := NewBytesPool(2*bs, bs)
				require.Equal(t, 1, p.shardMask)
				a := p.NewBytes(0)
				defer a.Free()
				require.NoError(t, a.WriteByte(1))
				hold := p.NewBytes(0)
				defer hold.Free()
				require.NoError(t, hold.WriteByte(2))
				// Both blocks are out, and the waiter needs both
				// (ReadFrom one after the other).
				if order == "hot first" {
					_, err := a.ReadByte()
					require.NoError(t, err)
					_, ok := hotBlock(p, a.st.c.shard)
					require.True(t, ok)
				}
				ch := wait(p)
				if order == "queued first" {
					require.Eventually(t, func() bool { return p.Stats().Waiters == 1 }, waitTimeout, time.Millisecond)
					_, err := a.ReadByte()
					require.NoError(t, err)
				}
				hold.Free()
				select {
				case r := <-ch:
					require.NoError(t, r.err)
				case <-time.After(waitTimeout):
					t.Fatalf("a writer still waits for a hot block: %+v", p.Stats())
				}
			})
		}
	}
}

// The race that the hot slots' ordering prevents: a lone block goes hot
// just as a writer that needs it queues. If neither saw the other, the
// writer would wait for good, as nothing else frees a block. Each round
// ends with both done or fails.
func TestHotBlockRacingQueue(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	const bs = 16
	rounds := 20000
	if testing.Short() {
		rounds = 2000
	}
	p := testPool(t, 2*bs, bs)
	a, b := p.NewBytes(0), p.NewBytes(0)
	defer a.Free()
	defer b.Free()
	two := fill(2*bs, 4)
	for i := range rounds {
		require.NoError(t, a.WriteByte(byte(i)))
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range i % 3 {
				runtime.Gosched()
			}
			_, _ = a.ReadByte() // frees a's block into its hot slot
		}()
		ch := asyncWrite(b, two) // needs both blocks
		select {
		case r := <-ch:
			require.NoError(t, r.err, "round %d", i)
		case <-time.After(waitTimeout):
			t.Fatalf("round %d: a writer waits while the pool's blocks sit in a hot slot: %+v", i, p.Stats())
		}
		wg.Wait()
		b.Reset()
	}
}

// While a writer is queued, nobody takes a hot block ahead of it, as
// nobody takes units from the semaphore ahead of it.
func TestTakeHotYieldsToQueue(t *testing.T) {
	const bs = 16
	p := onePoolShard(t, bs, bs)
	b := p.NewBytes(0)
	require.NoError(t, b.WriteByte(1))
	_, err := b.ReadByte()
	require.NoError(t, err)
	_, ok := hotBlock(p, 0)
	require.True(t, ok)

	// Queue for the block without draining the slot, as a writer does
	// between Enqueue and the drain.
	q := p.sema.Enqueue(1, t)
	_, ok = p.takeHot(0)
	assert.False(t, ok, "takeHot passed a queued writer")
	_, ok = p.tryGetBlock(0)
	assert.False(t, ok, "tryGetBlock passed a queued writer")

	p.drainHot(0)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, p.sema.Wait(ctx, q), "the drained block went to the queue")
	assert.Equal(t, 1, p.Stats().BlocksInUse, "the writer holds the reservation")
	p.freeBlock(p.getBlock(0), 0)
	b.Free()
}
