package bytespool

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shardPool is testPool with the given number of shards (a power of two
// up to maxShards), whatever GOMAXPROCS is.
func shardPool(t *testing.T, shards, maxMemory, blockSize int) *BytesPool {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(shards))
	p := testPool(t, maxMemory, blockSize)
	require.Equal(t, shards-1, p.shardMask)
	return p
}

// twoShardPool is shardPool with two shards.
func twoShardPool(t *testing.T, maxMemory, blockSize int) *BytesPool {
	return shardPool(t, 2, maxMemory, blockSize)
}

// onShard returns a new Bytes of p with home shard s, as if made on a P
// whose shard is s (see TestNewShardPerP).
func onShard(p *BytesPool, s int) *Bytes {
	b := p.NewBytes(0)
	b.st.c.shard = s
	return b
}

// twoShardBytes returns a two-shard pool of the given number of 64-byte
// blocks and a Bytes on each shard, freed when the test ends.
func twoShardBytes(t *testing.T, blocks int) (p *BytesPool, a, b *Bytes) {
	p = twoShardPool(t, blocks*64, 64)
	a, b = onShard(p, 0), onShard(p, 1)
	t.Cleanup(func() {
		a.Free()
		b.Free()
	})
	return p, a, b
}

// Each shard carves its fresh blocks from a stripe of its own, so two cores
// that each reuse one block use blocks whose links are lines apart; and
// Stats counts only the blocks handed out.
func TestStripesKeepShardsApart(t *testing.T) {
	const bs = 64
	p, a, b := twoShardBytes(t, 100)

	require.NoError(t, a.WriteByte('a'))
	require.NoError(t, b.WriteByte('b'))
	assert.Equal(t, uint32(0), a.st.c.head)
	assert.Equal(t, uint32(stripeBlocks), b.st.c.head, "shard 1's first block starts a stripe of its own")
	assert.Equal(t, 2*stripeBlocks, p.arena.Carved())
	s := p.Stats()
	assert.Equal(t, 2, s.BlocksAllocated, "the rest of the stripes is not allocated yet")
	assert.Equal(t, 2, s.BlocksInUse)

	// The next fresh block of each shard comes from its own stripe.
	_, err := a.Write(fill(bs, 1))
	require.NoError(t, err)
	_, err = b.Write(fill(bs, 2))
	require.NoError(t, err)
	assert.Equal(t, uint32(1), a.st.c.tail)
	assert.Equal(t, uint32(stripeBlocks+1), b.st.c.tail)
	assert.Equal(t, 4, p.Stats().BlocksAllocated)
	assert.Equal(t, append([]byte{'a'}, fill(bs, 1)...), readAll(t, a))
	assert.Equal(t, append([]byte{'b'}, fill(bs, 2)...), readAll(t, b))
}

// A shard carves fresh blocks before it takes another shard's hot block,
// which that shard's next write is about to reuse.
func TestStripeBeforeOtherShardsHotBlock(t *testing.T) {
	const bs = 64
	p := twoShardPool(t, 100*bs, bs)
	a := onShard(p, 0)
	defer a.Free()
	require.NoError(t, a.WriteByte('a'))
	_, err := a.ReadByte()
	require.NoError(t, err)
	hot, ok := hotBlock(p, 0)
	require.True(t, ok)

	for _, n := range []int{1, 2 * bs} { // the one-block path and getBlocks
		b := onShard(p, 1)
		_, err = b.Write(fill(n, 3))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, b.st.c.head, uint32(stripeBlocks), "a write of %d bytes on shard 1 took a block of shard 0's stripe", n)
		got, ok := hotBlock(p, 0)
		assert.True(t, ok && got == hot, "a write of %d bytes on shard 1 took shard 0's hot block", n)
		assert.Equal(t, fill(n, 3), readAll(t, b))
		b.Free()
	}
}

// Once the arena is used up, a shard takes what it needs from another
// shard's stripe and hot block rather than wait.
func TestStripesOfOtherShardsOnceArenaIsUsedUp(t *testing.T) {
	const bs = 64
	p, a, b := twoShardBytes(t, 4)

	require.NoError(t, a.WriteByte('a')) // block 0; shard 0's stripe is now blocks 1-3
	within(t, "a write of the three blocks in shard 0's stripe", func() {
		_, err := b.Write(fill(3*bs, 4))
		require.NoError(t, err)
	})
	assert.Equal(t, 4, p.Stats().BlocksAllocated)
	assert.Equal(t, fill(3*bs, 4), readAll(t, b)) // three blocks to shard 1's ring

	_, err := a.ReadByte() // block 0 becomes shard 0's hot block
	require.NoError(t, err)
	within(t, "a write of every block of the pool", func() {
		_, err := b.Write(fill(4*bs, 5))
		require.NoError(t, err)
	})
	_, ok := hotBlock(p, 0)
	assert.False(t, ok, "shard 0's hot block was used")
	assert.Equal(t, 4, p.Stats().BlocksInUse)
	assert.Equal(t, fill(4*bs, 5), readAll(t, b))
}

// An unlimited pool allocates a slab only when no block is free: not while
// another shard's stripe holds fresh blocks of the slabs it has.
func TestStripesAllocateNoSlabEarly(t *testing.T) {
	t.Run("one block per shard", func(t *testing.T) {
		p := shardPool(t, maxShards, 0, 4096)
		for s := range maxShards {
			b := onShard(p, s)
			defer b.Free()
			require.NoError(t, b.WriteByte('x'))
		}
		assert.Equal(t, 1, p.arena.Slabs(), "slab 0 holds %d blocks, and %d are held", p.arena.SlabBlocks(0), maxShards)
		assert.Equal(t, maxShards, p.Stats().BlocksAllocated)
	})
	t.Run("the rest of a stripe", func(t *testing.T) {
		const bs = 1 << 20 // one block in slab 0, two in slab 1
		p := shardPool(t, 2, 0, bs)
		a, b := onShard(p, 0), onShard(p, 1)
		defer a.Free()
		defer b.Free()
		for _, x := range []*Bytes{a, b, a} {
			_, err := x.Write(fill(bs, 7))
			require.NoError(t, err)
		}
		// a's second block is the rest of b's stripe in slab 1.
		assert.Equal(t, 2, p.arena.Slabs(), "three blocks held, and slabs 0 and 1 hold three")
		assert.Equal(t, 3, p.Stats().BlocksAllocated)
	})
}

// A stripe carved while the shard already has one goes to the shard's
// ring: its blocks are free, and none is lost.
func TestKeepStripeWhenShardHasOne(t *testing.T) {
	const bs = 64
	p := onePoolShard(t, 100*bs, bs)
	a := p.NewBytes(0)
	defer a.Free()
	require.NoError(t, a.WriteByte('a'))
	lo, hi := unpackStripe(p.local[0].stripe.Load())
	require.Equal(t, []uint32{1, stripeBlocks}, []uint32{lo, hi})

	// As if another goroutine of the shard carved a stripe meanwhile.
	first, k, err := p.arena.CarveN(stripeBlocks)
	require.NoError(t, err)
	p.keepStripe(first, first+uint32(k), 0)
	lo, hi = unpackStripe(p.local[0].stripe.Load())
	assert.Equal(t, []uint32{1, stripeBlocks}, []uint32{lo, hi}, "the stripe is kept")
	assert.Equal(t, 1, p.Stats().BlocksInUse)

	// The ring's blocks count as allocated, and come before the stripe.
	assert.Equal(t, 1+k, p.Stats().BlocksAllocated)
	b := p.NewBytes(0)
	_, err = b.Write(fill(2*bs, 6))
	require.NoError(t, err)
	assert.Equal(t, first, b.st.c.head)
	b.Free()
	_, err = a.ReadByte()
	require.NoError(t, err)
	requireAllFree(t, p)
}

// Goroutines on two shards write, read and free blocks of fresh pools at
// once, so that they race to carve stripes, take from them, and take
// from each other's once the arena (or, unlimited, its slabs so far) is
// used up. Every Bytes reads back what it wrote, and in the end every
// carved block is free exactly once.
func TestStripesConcurrent(t *testing.T) {
	const (
		blocks  = 3*stripeBlocks + 5 // a limited pool is used up after three stripes and a bit
		workers = 4
	)
	rounds := 200
	if testing.Short() {
		rounds = 20
	}
	for r := range rounds {
		// Even rounds: a limited pool of 16-byte blocks, each op at most
		// 24 blocks, so 4 workers never need more than the pool and no
		// write waits. Odd rounds: an unlimited pool of 16 KiB blocks,
		// whose first slabs (16 blocks, then 32) are no longer than a
		// stripe, so stripes end at slab ends, and in most rounds
		// carvers race to allocate a slab; each op at most 3 blocks.
		bs, maxMemory, most := 16, blocks*16, 24
		if r%2 == 1 {
			bs, maxMemory, most = 16<<10, 0, 3
		}
		p := twoShardPool(t, maxMemory, bs)
		var wg sync.WaitGroup
		for g := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(r), uint64(g)))
				for op := range 20 {
					b := onShard(p, g%2)
					want := fill(1+rng.IntN(most*bs), byte(op+g))
					if _, err := b.Write(want); !assert.NoError(t, err) {
						b.Free()
						return
					}
					got := readAll(t, b)
					b.Free()
					if !assert.True(t, bytes.Equal(want, got), "round %d, worker %d, op %d: read back other bytes", r, g, op) {
						return
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if maxMemory > 0 {
			require.LessOrEqual(t, p.Stats().BlocksAllocated, blocks)
		}
		requireAllFree(t, p)
	}
}
