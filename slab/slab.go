// Package slab implements the arena of a byte pool: memory carved into
// fixed-size blocks that are addressed by a compact uint32 index.
//
// An [Arena] owns a run of slabs, each a single pointer-free region of
// memory, so the garbage collector never scans block contents and there is
// no heap object per block. Blocks are handed out lazily by a bump counter
// ([Arena.CarveN]): a block is touched only once it is used, so a large
// reservation costs address space, not resident memory.
//
// # Where the memory lives
//
// Where [Mapped] is true (unix, built without -race and without the
// bytespool_heaparena tag), the arena is anonymous memory mapped from the
// operating system, outside the Go heap: it does not count toward the
// garbage collector's goal, toward GOMEMLIMIT, or in [runtime.MemStats], so
// a large pool does not make the collector run more often. On Linux the mappings are made with
// MAP_NORESERVE, so a large cap costs address space rather than commit
// charge. The memory stays mapped until [Arena.Free]; dropping the Arena
// alone does not give it back.
//
// Elsewhere, and under the race detector, which cannot see memory it did
// not allocate, each slab is a []byte on the Go heap, counted like any other
// allocation, and allocated only as carving reaches it. A size beyond any
// address space is an error, but memory the system refuses below that
// aborts the program, as it does for any Go allocation. The tag
// bytespool_heaparena selects this backend without -race, so that it can be
// tested as the platforms without mmap run it.
//
// # Recycling
//
// The arena never takes blocks back. Recycling is the job of the caller,
// which typically keeps one free list per slab; [Arena.SlabOf],
// [Arena.Locate] and [Arena.SlabBlocks] expose the slab geometry for that
// purpose, and [Arena.Slab] a slab's memory, for copies across adjacent
// blocks. [Arena.Release] gives the memory of blocks the caller holds free
// back to the operating system, where the backend can.
package slab

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"

	"go.uber.org/atomic"

	"github.com/zjj/bytespool/internal/cacheline"
)

// MaxBlocks is the largest number of blocks an arena can hold. Block indices
// are uint32 and run from 0 to MaxBlocks-1, so the index math.MaxUint32
// never names a block and is free for callers to use as a sentinel.
const MaxBlocks = 1<<32 - 1

// ErrFull is returned by [Arena.CarveN] when the arena has carved all the
// blocks it can ever hold. The arena never takes blocks back, so once
// CarveN has returned ErrFull it returns it for good.
var ErrFull = errors.New("slab: arena full")

// ErrNoMemory is wrapped by the errors of [New] and [Arena.CarveN] when the
// memory they need cannot be had: the system refused it, or it is more
// than the platform can address.
var ErrNoMemory = errors.New("slab: out of memory")

const (
	// firstSlabBytes is the minimum size of slab 0: large enough that small
	// blocks do not cause a growth step every few carves, small enough that
	// a pool that stays tiny stays cheap.
	firstSlabBytes = 256 << 10

	// maxSlabs bounds the slab table of an arena. Slab k holds
	// B0<<k blocks starting at index B0*(1<<k - 1), with B0 >= 1; since no
	// index reaches MaxBlocks = 1<<32 - 1, k <= 31 for every valid index.
	maxSlabs = 32
)

// An Arena is memory carved into blocks of BlockSize bytes. Create one with
// [New] and give its memory back with [Arena.Free]. An Arena is safe for
// concurrent use, except Free.
//
// Slab k holds B0<<k blocks, B0 the smallest power of two such that
// B0*BlockSize >= 256 KiB, and the last slab is cut short at the arena's
// capacity: maxBlocks for a limited arena, about MaxBlocks for an unlimited
// one (see [New]). n blocks thus need only about log2(n/B0) slabs, and both
// kinds find a block the same way, without a branch, which keeps Block
// small enough to inline. Slabs are published one by one as carving
// reaches them, so a caller that keeps data per slab pays for a slab only
// once it is used, whatever the capacity.
type Arena struct {
	// Immutable after New.
	blockSize int
	limit     int    // maxBlocks as given to New; 0 = unlimited
	capacity  uint64 // blocks this arena can ever hold (see New); <= MaxBlocks
	b0shift   uint   // log2(B0)

	// region is the whole memory of a limited arena whose backend reserves
	// it in New (see reserveUpFront); its slabs are views into it, back to
	// back. nil otherwise: each slab is then a reservation of its own.
	// Written by New, and cleared by Free.
	region []byte

	// slabs[k] is slab k, nil until published by grow under mu. Each entry
	// is written once, before the atomic store that raises avail to cover
	// its blocks, and read without a lock only for blocks carved, so
	// after a load of avail that saw it raised: the store and that load
	// order the write before every read. Free clears them all. Plain
	// slice headers, not pointers to them, so that a slab costs the
	// garbage collector no object of its own.
	slabs [maxSlabs][]byte

	_ [cacheline.Size]byte

	// carved is the number of blocks handed out, which are exactly the
	// indices [0, carved). Only carveN writes it, by CAS from n to n+m
	// while n+m <= avail, so it never passes avail and never hands an
	// index twice.
	carved atomic.Uint64

	// avail is the number of blocks in published slabs, raised only by grow
	// under mu. avail <= capacity until Free, which sets it to 0.
	avail atomic.Uint64

	// reserved is the number of bytes the arena holds from its backend:
	// the region, or the sum of its slabs.
	reserved atomic.Int64

	mu    sync.Mutex // serializes grow, Meta and Free
	freed bool       // under mu: Free has run
	meta  [][]byte   // under mu: the mappings Meta made, for Free

	// Keeps the next heap object off carved's cache line.
	_ [cacheline.Size]byte
}

// New returns an arena of blocks of blockSize bytes.
//
// If maxBlocks > 0, the arena holds exactly maxBlocks blocks. Where [Mapped]
// is true, New reserves all of them at once, in a single mapping; otherwise
// it allocates nothing, and each slab is allocated when carving first
// reaches it. Either way the memory is zero and is not touched until a
// block is written, so this reserves address space rather than resident
// memory, and New does no work per block.
//
// If maxBlocks == 0, the arena is unlimited: slabs are reserved as CarveN
// needs them, up to MaxBlocks blocks in total, or fewer when their total
// size in bytes would overflow int (only with huge blocks or on 32-bit
// platforms). The last slab is truncated to that cap.
//
// New returns an error wrapping [ErrNoMemory], which tells how many bytes
// were asked for, if the reservation is refused or is more than the
// platform can address.
//
// New panics if blockSize <= 0, maxBlocks < 0, maxBlocks > MaxBlocks, or
// blockSize*maxBlocks overflows int.
func New(blockSize, maxBlocks int) (*Arena, error) {
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
	// B0 = the smallest power of two >= ceil(firstSlabBytes/blockSize),
	// which is 1 for blocks of 256 KiB or more. The ceiling is computed as
	// (x-1)/y + 1 because x + y - 1 can overflow for a huge blockSize.
	b0 := (firstSlabBytes-1)/blockSize + 1
	a.b0shift = uint(bits.Len(uint(b0 - 1)))
	if maxBlocks == 0 {
		// Cap the total so that the byte offset of every block fits in
		// int; every slab size computed by grow then fits too.
		a.capacity = min(MaxBlocks, uint64(math.MaxInt/blockSize))
		return a, nil
	}

	a.capacity = uint64(maxBlocks)
	size := maxBlocks * blockSize // checked above
	if size > maxReserve {
		return nil, noMemory(size, errTooLarge)
	}
	if reserveUpFront {
		mem, err := reserve(size)
		if err != nil {
			return nil, err
		}
		a.region = mem
		a.reserved.Store(int64(size))
	}
	return a, nil
}

// errTooLarge is the cause given for a reservation above maxReserve.
var errTooLarge = errors.New("more than the platform can address")

// noMemory returns the error for a refused reservation of size bytes.
func noMemory(size int, cause error) error {
	return fmt.Errorf("%w: reserving %d bytes: %w", ErrNoMemory, size, cause)
}

// BlockSize returns the size of every block in bytes.
func (a *Arena) BlockSize() int { return a.blockSize }

// Limit returns maxBlocks as given to New: 0 for an unlimited arena.
func (a *Arena) Limit() int { return a.limit }

// CarveN carves up to n consecutive blocks that have never been handed
// out, all zeros: it returns the first, i, and how many it carved, k >= 1,
// which are the blocks [i, i+k). Indices are handed out in increasing order
// from 0, so the carved blocks are exactly [0, Carved()).
//
// CarveN carves fewer than n only where the slabs published so far end: it
// publishes the next slab, reserving its memory if the backend has not
// already, only when it finds no block left in the slabs it has.
//
// The error is [ErrFull] once the arena has carved all its blocks (see
// [New]), or wraps [ErrNoMemory] if the next slab's memory was refused; the
// arena is then unchanged, and a later CarveN tries again. CarveN is
// lock-free except when it must publish a slab. It panics if n < 1.
func (a *Arena) CarveN(n int) (i uint32, k int, err error) {
	if n < 1 {
		panic(fmt.Sprintf("slab: CarveN: n must be positive, got %d", n))
	}
	for {
		if i, k, ok := a.carveN(n); ok {
			return i, k, nil
		}
		if err := a.grow(a.carved.Load()); err != nil {
			return 0, 0, err
		}
	}
}

// TryCarveN is CarveN without the growth: it carves only from the slabs
// already published, and returns ok == false where CarveN would publish
// one (or fail). It never takes a lock. It panics if n < 1.
func (a *Arena) TryCarveN(n int) (i uint32, k int, ok bool) {
	if n < 1 {
		panic(fmt.Sprintf("slab: TryCarveN: n must be positive, got %d", n))
	}
	return a.carveN(n)
}

// carveN carves up to n blocks from the published slabs, or reports false
// if they are carved up.
func (a *Arena) carveN(n int) (i uint32, k int, ok bool) {
	for {
		c := a.carved.Load()
		avail := a.avail.Load()
		if c >= avail {
			return 0, 0, false
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

// grow makes block n available, publishing the next slab if no other
// goroutine has done so yet. It returns ErrFull if the arena has no block
// n, and the backend's error if the slab's memory was refused, leaving the
// arena as it was.
func (a *Arena) grow(n uint64) error {
	a.mu.Lock()
	// Deferred so that a panic, if recovered by the caller, does not leave
	// the arena locked forever.
	defer a.mu.Unlock()
	if a.freed {
		panic("slab: arena used after Free")
	}
	avail := a.avail.Load()
	if n < avail {
		return nil // another goroutine grew the arena while we waited
	}
	if avail >= a.capacity {
		return ErrFull
	}
	// avail < capacity, so avail is a valid index and the first of a new
	// slab, and neither product overflows: avail+nb <= capacity, and
	// capacity*blockSize fits in int (see New).
	k := a.SlabOf(uint32(avail))
	nb := a.SlabBlocks(k)
	off, size := int(avail)*a.blockSize, nb*a.blockSize
	var s []byte
	if a.region != nil {
		s = a.region[off : off+size : off+size]
	} else {
		var err error
		if s, err = reserve(size); err != nil {
			return err
		}
		a.reserved.Add(int64(size))
	}
	a.slabs[k] = s
	// Publish the slab before its blocks. A goroutine that carves a block
	// of slab k has loaded this value of avail, and atomics are sequentially
	// consistent in Go, so the store to slabs[k] happens before its Block,
	// and before the Block of anyone it hands the index to. The memory
	// itself was reserved above, by this goroutine, or in New, before the
	// Arena was shared; either way before this store.
	a.avail.Store(avail + uint64(nb))
	return nil
}

// Grow publishes the next slab, reserving its memory where the backend has
// not already, and returns how many blocks it holds, so that a caller that
// counts the blocks it may hand out can add them before any is carved. The
// error is [ErrFull] once the arena has no further slab, or wraps
// [ErrNoMemory] if the slab's memory was refused; the arena is then
// unchanged, and a later Grow tries again. The count is exact when nobody
// publishes a slab concurrently (by Grow or CarveN); TryCarveN never does.
func (a *Arena) Grow() (int, error) {
	before := a.avail.Load()
	if err := a.grow(before); err != nil {
		return 0, err
	}
	return int(a.avail.Load() - before), nil
}

// Published returns the number of blocks in the slabs published so far,
// carved or not: the blocks [0, Published()).
func (a *Arena) Published() int { return int(a.avail.Load()) }

// Carved returns the number of blocks carved so far.
func (a *Arena) Carved() int { return int(a.carved.Load()) }

// Block returns block i, with len and cap equal to BlockSize, so that an
// append to it can never write into the next block. i must have been
// returned by CarveN or TryCarveN; Block may panic otherwise. Block takes
// no lock.
func (a *Arena) Block(i uint32) []byte {
	k, j := a.Locate(i)
	// Cannot overflow: the blocks of a slab fit in an int number of bytes.
	o := j * a.blockSize
	return a.slabs[k][o:][:a.blockSize:a.blockSize]
}

// Slab returns the memory of slab k: its blocks back to back, block pos of
// the slab (see Locate) at offset pos*BlockSize, so that a caller holding
// a run of consecutive blocks can copy across them at once. Its length and
// capacity are SlabBlocks(k)*BlockSize. k must be the slab of a carved
// block; Slab may panic otherwise. Slab takes no lock.
func (a *Arena) Slab(k int) []byte {
	return a.slabs[k]
}

// SlabOf returns the index of the slab that holds block i, or will hold it
// once published. i must be below the arena's capacity.
func (a *Arena) SlabOf(i uint32) int {
	k, _ := a.Locate(i)
	return k
}

// Locate returns the slab that holds block i, or will hold it once
// published, and the position of the block within that slab, counted in
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

// SlabBlocks returns the number of blocks in slab k, whether or not it is
// published yet. It returns 0 if the arena never has a slab k, so the whole
// geometry can be listed by counting up from k = 0.
func (a *Arena) SlabBlocks(k int) int {
	if k < 0 || k >= maxSlabs {
		return 0
	}
	// B0 <= 1<<18 and k < 32, so neither shift overflows uint64.
	start := (uint64(1)<<k - 1) << a.b0shift
	if start >= a.capacity {
		return 0
	}
	return int(min(uint64(1)<<k<<a.b0shift, a.capacity-start))
}

// Slabs returns the number of slabs published so far: 0 until the first
// CarveN, then the slabs that hold [0, Carved()) and perhaps the next.
func (a *Arena) Slabs() int {
	avail := a.avail.Load()
	if avail == 0 {
		return 0
	}
	// Published slabs are exactly those covering [0, avail).
	return a.SlabOf(uint32(avail-1)) + 1
}

// Meta returns n > 0 zeroed words of memory for the caller's bookkeeping
// of the arena's blocks, such as free lists and per-block links, which
// must hold no pointers into the Go heap. Where [Mapped] is true it is
// mapped from the system as the blocks are, outside the Go heap, so that
// the garbage collector neither marks nor scans it at its cycles, and Free
// gives it back with the blocks: like them, it must not be touched after
// Free, and pointers to it must be dropped first, lest the address be
// reused. Elsewhere it is a []uint64 on the Go heap, pointer-free, which
// the collector marks but never scans. It is not counted in Reserved.
//
// The error wraps [ErrNoMemory] if the memory was refused. Meta panics
// after Free.
func (a *Arena) Meta(n int) ([]uint64, error) {
	if n < 1 {
		panic(fmt.Sprintf("slab: Meta: n must be positive, got %d", n))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.freed {
		panic("slab: arena used after Free")
	}
	words, mem, err := reserveWords(n)
	if err != nil {
		return nil, err
	}
	if mem != nil {
		a.meta = append(a.meta, mem)
	}
	return words, nil
}

// Reserved returns the number of bytes of memory the arena holds from its
// backend: where [Mapped] is true, the address space mapped (all of it from
// New for a limited arena, slab by slab for an unlimited one), of which only
// the pages written to, and not released since, are resident; otherwise the
// bytes of the slabs allocated on the Go heap. It is 0 after Free.
func (a *Arena) Reserved() int { return int(a.reserved.Load()) }

// Release gives the memory of blocks [first, first+n) back to the operating
// system and returns how many bytes it gave back: the whole pages inside
// the range, so 0 for a range smaller than a page, and 0 where the backend
// cannot release memory (see [Mapped]; Linux only so far). Released blocks
// stay carved and usable, and read as zeros when next touched, which
// brings their memory back.
//
// The caller must hold the blocks: carved, and neither read nor written by
// anyone during Release. Release may run concurrently with any method but
// Free on other blocks. It panics if n < 0 or the range passes Carved().
func (a *Arena) Release(first uint32, n int) int {
	if n < 0 {
		panic(fmt.Sprintf("slab: Release: n must not be negative, got %d", n))
	}
	end := uint64(first) + uint64(n)
	if c := a.carved.Load(); end > c {
		panic(fmt.Sprintf("slab: Release: blocks [%d, %d) are not all carved (%d are)", first, end, c))
	}
	bs := a.blockSize
	if a.region != nil {
		// The slabs are back to back: release the range at once, pages
		// that straddle two slabs included.
		return release(a.region[int(first)*bs : int(end)*bs])
	}
	released := 0
	for i := uint64(first); i < end; {
		k, pos := a.Locate(uint32(i))
		m := min(end-i, uint64(a.SlabBlocks(k)-pos))
		released += release(a.Slab(k)[pos*bs : (pos+int(m))*bs])
		i += m
	}
	return released
}

// Free gives all the arena's memory back, that of Meta included: it
// unmaps it where [Mapped] is true, and otherwise drops the arena's
// references to it, for the garbage collector to take. A second Free does
// nothing.
//
// After Free the arena must not be used: no method but Free may be called,
// and no block or slab obtained before may be touched, by any goroutine.
// Where the memory was mapped, touching it crashes the program with a
// fault that cannot be recovered. As a guard, CarveN panics after Free and
// TryCarveN finds nothing to carve. Free needs nothing but the Arena, so it can run from a cleanup
// ([runtime.AddCleanup]) of an object that every holder of a block keeps
// reachable.
func (a *Arena) Free() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.freed {
		return
	}
	a.freed = true
	// With avail at 0, a CarveN finds nothing to carve and goes to grow,
	// which panics, rather than hand out memory that is gone.
	a.avail.Store(0)
	// The slabs of a region are views into it: unreserve the region once,
	// and each slab only if it is a reservation of its own.
	views := a.region != nil
	if views {
		unreserve(a.region)
		a.region = nil
	}
	for k, s := range a.slabs {
		if s != nil && !views {
			unreserve(s)
		}
		a.slabs[k] = nil
	}
	for i, mem := range a.meta {
		unreserve(mem)
		a.meta[i] = nil
	}
	a.meta = nil
	a.reserved.Store(0)
}
