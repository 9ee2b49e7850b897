// Package slab implements the arena of a byte pool: memory carved into
// fixed-size blocks that are addressed by a compact uint32 index.
//
// An [Arena] owns one or more slabs, each a single pointer-free []byte
// allocation, so the garbage collector never scans block contents and there
// is no heap object per block. Blocks are handed out lazily by a bump counter
// ([Arena.Carve]): a block is touched only once it is used, so a large
// reservation costs address space, not resident memory.
//
// The arena never takes blocks back. Recycling is the job of the caller,
// which typically keeps one free list per slab; [Arena.SlabOf], [Arena.Locate]
// and [Arena.SlabBlocks] expose the slab geometry for that purpose, and
// [Arena.Slab] a slab's memory, for copies across adjacent blocks.
package slab

import (
	"fmt"
	"math"
	"math/bits"
	"sync"

	"go.uber.org/atomic"
)

// MaxBlocks is the largest number of blocks an arena can hold. Block indices
// are uint32 and run from 0 to MaxBlocks-1, so the index math.MaxUint32
// never names a block and is free for callers to use as a sentinel.
const MaxBlocks = 1<<32 - 1

const (
	// firstSlabBytes is the minimum size of slab 0 of an unlimited arena:
	// large enough that small blocks do not cause a growth step every few
	// carves, small enough that a pool that stays tiny stays cheap.
	firstSlabBytes = 256 << 10

	// maxSlabs bounds the slab table of an arena. Slab k holds
	// B0<<k blocks starting at index B0*(1<<k - 1), with B0 >= 1; since no
	// index reaches MaxBlocks = 1<<32 - 1, k <= 31 for every valid index.
	maxSlabs = 32

	// cacheLine separates the carve counter, written on every Carve, from
	// the fields read on every Block. 128 bytes covers arm64 and ppc64, and
	// the adjacent-line prefetcher of x86.
	cacheLine = 128
)

// An Arena is memory carved into blocks of BlockSize bytes. Create one with
// [New]. An Arena is safe for concurrent use.
//
// Slab k holds B0<<k blocks (B0 a power of two), cut short at the arena's
// capacity. An unlimited arena grows slab by slab, with B0 the smallest
// power of two such that B0*BlockSize >= 256 KiB, so n blocks need only
// about log2(n/B0) slabs. A limited arena (maxBlocks > 0) is the same
// geometry with B0 >= maxBlocks: one slab of maxBlocks blocks, reserved by
// New. Both kinds thus find a block the same way, without a branch, which
// keeps Block small enough to inline.
type Arena struct {
	// Immutable after New.
	blockSize int
	limit     int    // maxBlocks as given to New; 0 = unlimited
	capacity  uint64 // blocks this arena can ever hold (see New); <= MaxBlocks
	b0shift   uint   // log2(B0)

	// slabs[k] is slab k, nil until published: by New for the single
	// slab of a limited arena, by grow under mu for an unlimited one.
	// Each entry is written once, before avail is raised to cover its
	// blocks; Block loads it without a lock.
	slabs [maxSlabs]atomic.Pointer[[]byte]

	_ [cacheLine]byte

	// carved is the number of blocks handed out, which are exactly the
	// indices [0, carved). Only carveN writes it, by CAS from n to n+m
	// while n+m <= avail, so it never passes avail and never hands an
	// index twice.
	carved atomic.Uint64

	// avail is the number of blocks in published slabs: capacity for a limited
	// arena (set by New), raised only by grow under mu for an unlimited one.
	// avail <= capacity always.
	avail atomic.Uint64

	mu sync.Mutex // serializes grow

	// Keeps the next heap object off carved's cache line.
	_ [cacheLine]byte
}

// New returns an arena of blocks of blockSize bytes.
//
// If maxBlocks > 0, the arena holds exactly maxBlocks blocks in one slab,
// allocated here. Fresh memory from the operating system is zero and is not
// touched until a block is written, so this reserves address space rather
// than resident memory.
//
// If maxBlocks == 0, the arena is unlimited: slabs are allocated as Carve
// needs them, up to MaxBlocks blocks in total, or fewer when their total
// size in bytes would overflow int (only with huge blocks or on 32-bit
// platforms). The last slab is truncated to that cap.
//
// New panics if blockSize <= 0, maxBlocks < 0, maxBlocks > MaxBlocks, or
// blockSize*maxBlocks overflows int.
func New(blockSize, maxBlocks int) *Arena {
	if blockSize <= 0 {
		panic(fmt.Sprintf("slab: blockSize must be positive, got %d", blockSize))
	}
	if maxBlocks < 0 {
		panic(fmt.Sprintf("slab: maxBlocks must not be negative, got %d", maxBlocks))
	}
	// Compare as uint64: MaxBlocks does not fit in a 32-bit int.
	if uint64(maxBlocks) > MaxBlocks {
		panic(fmt.Sprintf("slab: maxBlocks must be at most MaxBlocks (%d), got %d", uint64(MaxBlocks), maxBlocks))
	}
	if maxBlocks > math.MaxInt/blockSize {
		panic(fmt.Sprintf("slab: blockSize*maxBlocks overflows int (blockSize %d, maxBlocks %d)", blockSize, maxBlocks))
	}

	a := &Arena{blockSize: blockSize, limit: maxBlocks}
	if maxBlocks > 0 {
		a.capacity = uint64(maxBlocks)
		a.b0shift = uint(bits.Len64(uint64(maxBlocks - 1))) // B0 >= maxBlocks
		mem := make([]byte, maxBlocks*blockSize)
		a.slabs[0].Store(&mem)
		a.avail.Store(a.capacity)
		return a
	}

	// Cap the total so that the byte offset of every block fits in int;
	// every slab size computed by grow then fits too.
	a.capacity = min(MaxBlocks, uint64(math.MaxInt/blockSize))
	// B0 = the smallest power of two >= ceil(firstSlabBytes/blockSize),
	// which is 1 for blocks of 256 KiB or more. The ceiling is computed as
	// (x-1)/y + 1 because x + y - 1 can overflow for a huge blockSize.
	b0 := (firstSlabBytes-1)/blockSize + 1
	a.b0shift = uint(bits.Len(uint(b0 - 1)))
	return a
}

// BlockSize returns the size of every block in bytes.
func (a *Arena) BlockSize() int { return a.blockSize }

// Limit returns maxBlocks as given to New: 0 for an unlimited arena.
func (a *Arena) Limit() int { return a.limit }

// Carve returns the index of a block that has never been handed out; the
// block is all zeros. Indices are handed out in increasing order from 0, so
// the carved blocks are exactly [0, Carved()). Carve returns ok == false
// only when the arena is full: a limited arena has carved all its blocks,
// or an unlimited one has reached its cap (see New). The arena never takes
// blocks back, so once Carve has failed it fails for good.
//
// Carve is lock-free except when an unlimited arena must allocate a slab.
func (a *Arena) Carve() (i uint32, ok bool) {
	i, _, ok = a.CarveN(1)
	return i, ok
}

// CarveN carves up to n consecutive blocks at once, as Carve carves one: it
// returns the first, i, and how many it carved, k >= 1, which are the
// blocks [i, i+k). It carves fewer than n only where the slabs allocated so
// far end: an unlimited arena allocates its next slab only for a CarveN
// that finds no block left in the slabs it has. It returns ok == false when
// the arena is full, as Carve does. It panics if n < 1.
func (a *Arena) CarveN(n int) (i uint32, k int, ok bool) { return a.carveN("CarveN", n, true) }

// TryCarveN is CarveN without the growth: where CarveN would allocate a
// slab, it returns ok == false. For a limited arena, whose one slab is
// allocated by New, it is CarveN. It panics if n < 1.
func (a *Arena) TryCarveN(n int) (i uint32, k int, ok bool) { return a.carveN("TryCarveN", n, false) }

// carveN is CarveN, allocating a slab when it must only if grow is set;
// name is the caller's, for the panic.
func (a *Arena) carveN(name string, n int, grow bool) (i uint32, k int, ok bool) {
	if n < 1 {
		panic(fmt.Sprintf("slab: %s: n must be positive, got %d", name, n))
	}
	for {
		c := a.carved.Load()
		avail := a.avail.Load()
		if c >= avail {
			if !grow || !a.grow(c) {
				return 0, 0, false
			}
			continue
		}
		// Only move c forward to at most avail: carved never
		// overshoots, so Carved is exact and a failed carve consumes
		// nothing.
		m := min(uint64(n), avail-c)
		if a.carved.CompareAndSwap(c, c+m) {
			return uint32(c), int(m), true // c < avail <= capacity <= MaxBlocks
		}
	}
}

// grow makes block n available, allocating the next slab of an unlimited
// arena if no other goroutine has done so yet. It reports false if the
// arena is full, as a limited one always is: its avail is its capacity.
func (a *Arena) grow(n uint64) bool {
	a.mu.Lock()
	// Deferred so that a panic in make (address space exhausted), if
	// recovered by the caller, does not leave the arena locked forever.
	defer a.mu.Unlock()
	avail := a.avail.Load()
	if n < avail {
		return true // another goroutine grew the arena while we waited
	}
	if avail >= a.capacity {
		return false
	}
	// avail < capacity, so avail is a valid index and the first of a new slab.
	k := a.SlabOf(uint32(avail))
	nb := a.SlabBlocks(k)
	s := make([]byte, nb*a.blockSize) // cannot overflow: avail+nb <= capacity <= MaxInt/blockSize
	a.slabs[k].Store(&s)
	// Publish the slab before its blocks. A goroutine that carves a block
	// of slab k has loaded this value of avail, and atomics are sequentially
	// consistent in Go, so the store to slabs[k] happens before its Block,
	// and before the Block of anyone it hands the index to.
	a.avail.Store(avail + uint64(nb))
	return true
}

// Carved returns the number of blocks carved so far.
func (a *Arena) Carved() int { return int(a.carved.Load()) }

// Block returns block i, with len and cap equal to BlockSize, so that an
// append to it can never write into the next block. i must have been
// returned by Carve; Block may panic otherwise. Block takes no lock.
func (a *Arena) Block(i uint32) []byte {
	k, j := a.Locate(i)
	// Cannot overflow: the blocks of a slab fit in an int number of bytes.
	o := j * a.blockSize
	return (*a.slabs[k].Load())[o:][:a.blockSize:a.blockSize]
}

// Slab returns the memory of slab k: its blocks back to back, block pos of
// the slab (see Locate) at offset pos*BlockSize, so that a caller holding
// a run of consecutive blocks can copy across them at once. Its length is
// SlabBlocks(k)*BlockSize. k must be the slab of a carved block; Slab may
// panic otherwise. Slab takes no lock.
func (a *Arena) Slab(k int) []byte {
	return *a.slabs[k].Load()
}

// SlabOf returns the index of the slab that holds block i, or will hold it
// once allocated. i must be below the arena's capacity.
func (a *Arena) SlabOf(i uint32) int {
	k, _ := a.Locate(i)
	return k
}

// Locate returns the slab that holds block i, or will hold it once
// allocated, and the position of the block within that slab, counted in
// blocks: block i is the pos-th block of slab k. A caller that keeps
// per-block data beside each slab indexes it with pos. i must be below the
// arena's capacity.
func (a *Arena) Locate(i uint32) (k, pos int) {
	// Slabs 0..k-1 hold B0*(1<<k - 1) blocks, so k is the largest value
	// with B0*(1<<k - 1) <= i, that is bits.Len(i/B0 + 1) - 1.
	k = bits.Len64(uint64(i)>>a.b0shift+1) - 1
	pos = int(uint64(i) - (1<<k-1)<<a.b0shift)
	return k, pos
}

// SlabBlocks returns the number of blocks in slab k, whether or not an
// unlimited arena has allocated it yet. It returns 0 if the arena never has
// a slab k, so the whole geometry can be listed by counting up from k = 0.
func (a *Arena) SlabBlocks(k int) int {
	if k < 0 || k >= maxSlabs {
		return 0
	}
	// B0 <= 1<<32 and k < 32, so neither shift overflows uint64.
	start := (uint64(1)<<k - 1) << a.b0shift
	if start >= a.capacity {
		return 0
	}
	return int(min(uint64(1)<<k<<a.b0shift, a.capacity-start))
}

// Slabs returns the number of slabs allocated so far: always 1 for a
// limited arena, 0 for an unlimited one until its first Carve.
func (a *Arena) Slabs() int {
	avail := a.avail.Load()
	if avail == 0 {
		return 0
	}
	// Published slabs are exactly those covering [0, avail).
	return a.SlabOf(uint32(avail-1)) + 1
}
