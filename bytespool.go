// Package bytespool holds byte data in pooled fixed-size blocks, with a hard
// memory cap and blocking backpressure when the cap is reached.
//
// A BytesPool owns an arena carved into equal blocks (4 KiB by default). A
// Bytes is a FIFO of blocks that reads and writes like a bytes.Buffer:
// writing takes blocks from the pool, reading hands fully read blocks back.
// A pipe (NewPipe) is a stream of blocks between a writer and a reader that
// block on each other, like io.Pipe with a bounded buffer; the two ends hand
// blocks over through atomics, without a lock between them.
//
// How it differs from the alternatives:
//   - bytes.Buffer grows one contiguous slice and copies when it grows; a
//     Bytes never copies what it holds and never allocates once warm.
//   - sync.Pool-based buffers cap nothing and can vanish at any GC; a
//     BytesPool with MaxMemory set never hands out more than MaxMemory
//     bytes, and a writer that would exceed it waits for blocks, in arrival
//     order, instead of allocating.
//   - The arena is memory mapped outside the Go heap (on unix, outside the
//     race detector; see package slab), so the memory it holds costs the
//     garbage collector nothing to scan and does not raise its goal.
//
// Observing a pool: Stats answers "why is it stuck?" (BlockWaiters,
// OldestWait, PeakInUse, Rejected, Leaks besides the block counts);
// Config.Debug catches use after Free, and Config.OnLeak reports Bytes and
// pipes that were dropped without Free or Close. Every wait can be bounded
// with a context (WriteContext, ReadFromContext, ReadContext). To export
// Stats with expvar, one line does it:
//
//	expvar.Publish("bytespool", expvar.Func(func() any { return pool.Stats() }))
//
// and examples/prometheus, a module of its own, has a Prometheus collector.
//
// Layout: package slab carves the arena into blocks named by uint32
// indices; package ring recycles free indices through a lock-free ring;
// internal/park parks the goroutines that must wait; this package composes
// them into pools, Bytes and pipes.
package bytespool

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"time"

	"go.uber.org/atomic"

	"github.com/zjj/bytespool/internal/cacheline"

	"github.com/zjj/bytespool/internal/park"
	"github.com/zjj/bytespool/ring"
	"github.com/zjj/bytespool/slab"
)

// DefaultBlockSize is the block size of a Config whose BlockSize is 0.
const DefaultBlockSize = 4096

// MaxBlockSize is the largest block size a pool accepts.
const MaxBlockSize = 1 << 30

var (
	// ErrBytesCapacityTooSmall means the write would pass the maxLen of
	// the Bytes; nothing was written.
	ErrBytesCapacityTooSmall = errors.New("bytespool: write exceeds the capacity of the Bytes")
	// ErrPoolTooSmall means the data would need more blocks than the whole
	// pool holds, so waiting could never help; nothing was written.
	ErrPoolTooSmall = errors.New("bytespool: write exceeds the capacity of the pool")
	// ErrClosed means the Bytes was freed. (Pipes report their closed
	// ends as io.Pipe does, with io.ErrClosedPipe.)
	ErrClosed = errors.New("bytespool: use of a freed Bytes")
	// ErrInvalidConfig is wrapped by every error New returns.
	ErrInvalidConfig = errors.New("bytespool: invalid config")
)

// Config describes a pool. The zero Config is an unlimited pool of 4 KiB
// blocks.
type Config struct {
	// MaxMemory is the most memory, in bytes, that the pool hands out at
	// once: a whole number of blocks, at most 1<<31 of them. A MaxMemory
	// that is not a multiple of BlockSize is an error rather than rounded:
	// the pool can only hand out whole blocks, so rounding up would break
	// the cap and rounding down would quietly lose memory the caller
	// budgeted for. 0 means unlimited: the arena grows slab by slab
	// (doubling) as writers need blocks, and a slab the system refuses
	// fails the write that needed it with an error wrapping
	// ErrPoolTooSmall. A limited pool reserves its whole arena, as address
	// space, when it is made (New fails if the system refuses); the
	// system backs only the pages that are written. See Stats.ArenaBytes
	// for where the memory lives.
	MaxMemory int
	// BlockSize is the size of one block in bytes; 0 means
	// DefaultBlockSize. At most MaxBlockSize.
	BlockSize int
	// ZeroOnFree wipes every block when it returns to the pool, so the
	// next holder can never see the previous one's bytes even through a
	// bug. Use it for secrets. It costs one memclr per freed block.
	ZeroOnFree bool

	// Debug catches misuse, at a cost: it is for tests and staging. Every
	// NewBytes makes a new header, and Free never hands one back for
	// reuse, so a Bytes used after Free is always caught: every method
	// of it, Len, Free and Close included, panics with a message that
	// holds the stack of the first Free. (A call that was already under
	// way when Free ran returns ErrClosed, as without Debug.) Leak.Made
	// holds the stack of NewBytes' or NewPipe's caller. Pipes are as
	// without Debug: a second Close of an end is allowed, as with io.Pipe,
	// and a Write after the writer's Close returns io.ErrClosedPipe.
	//
	// What it costs: a Bytes that is made, written, read and freed is
	// about 12 times slower (1.8 µs against 0.15 µs for 1 KiB), and costs
	// 6 allocations (832 bytes) per Bytes: a new header every time and
	// the two stacks it records (see bench/RESULTS.md). The promise of
	// zero allocations in steady state holds only without Debug.
	Debug bool

	// OnLeak, if not nil, is called once for each Bytes that the garbage
	// collector reclaimed without Free or Close, and for each pipe whose
	// two ends it reclaimed while the reader was not closed and either
	// the writer was not closed or the pipe still held blocks. It is
	// never called for a Bytes that was freed, nor for a pipe whose
	// reader was closed or that was drained to io.EOF after the writer's
	// Close. Stats.Leaks counts the same events, with or without OnLeak.
	//
	// OnLeak runs on the goroutine that reclaims the Bytes or the pipe:
	// the runtime's cleanup goroutines for a Bytes, its finalizer
	// goroutine for a pipe (or, for a pipe dropped while a call was still
	// in it, the goroutine of that call as it returns). The runtime may
	// run several cleanups at once, but the pool calls OnLeak for one
	// leak at a time, never for two at once, and never while it holds a
	// lock of the pool, a Bytes or a pipe: OnLeak may call any method of
	// the pool, Stats included. It must not block for long, since it
	// holds up the other leaks' reports and the runtime's cleanups.
	OnLeak func(Leak)
}

// BytesPool hands out blocks to the Bytes and pipes made from it. All its
// methods are safe for concurrent use.
//
// Besides the arena, a pool keeps its free blocks in lock-free rings: one
// per slab and shard, with a shard per P (GOMAXPROCS when the pool is
// made, rounded up to a power of two, at most 8), so that a block freed on
// one core tends to be reused on that core. They cost 8 bytes per block
// and shard; the links that string a Bytes' blocks together cost 12 bytes
// per block: 0.7% of the arena for 4 KiB blocks and 2 shards. Both are made
// slab by slab, as writers first reach each slab of the arena (slab k of
// the arena holds B0<<k blocks, B0 the blocks in 256 KiB), so a pool costs
// them only for the blocks it has used, however large its MaxMemory.
//
// A pool needs no closing. At the first collection after nothing refers to
// it any more, neither the program nor a live Bytes (a freed Bytes does
// not count), a cleanup unmaps its arena and the garbage collector frees
// the rest. A pipe, and a Bytes dropped without Free, keep it one
// collection longer: until the finalizer or cleanup that gives back what
// they hold has run.
type BytesPool struct {
	arena     *slab.Arena
	blockSize int
	total     int // blocks; 0 = unlimited
	capacity  int // blocks the pool can ever hand out: total, or all an unlimited arena can name
	zero      bool

	// sema counts the blocks that may still be handed out, out of
	// capacity, spread over the same shards as the rings. A writer
	// reserves every block it needs here before it takes any from the
	// rings, so it never holds some while waiting for the rest. A hot
	// block (see hot) is free, but its reservation stays taken: it moves
	// with the block.
	sema park.Sema

	// slabs[k] is what the pool keeps beside slab k of the arena: its
	// free rings and its blocks' links (see slabLists). It is published
	// before any block of the slab is handed out, and nslabs only grows.
	//
	// Shards keep blocks on the core that used them last: every Bytes and
	// pipe has a home shard, gets blocks from it first and frees blocks
	// into it. Bytes headers come from a sync.Pool, which keeps them per
	// P, so the goroutines of one P mostly share a shard; a block freed
	// there is taken again on the same core, with its cache lines still
	// in that core's cache, instead of being pulled over from another
	// core by the write that fills it. Any shard serves any request once
	// the home shard is empty, so shards only change which free block a
	// writer gets, never whether it gets one.
	slabs     [maxSlabs]atomic.Pointer[slabLists]
	nslabs    atomic.Int32
	slabsMu   sync.Mutex    // serialises adding a slab's lists
	growMu    sync.Mutex    // serialises grow
	grown     atomic.Int64  // blocks an unlimited pool's grow has added to sema
	trimmed   atomic.Uint64 // bytes Trim has given back
	shardMask int           // shards-1; the number of shards is a power of two
	nextShard atomic.Uint32

	// headers holds free Bytes headers, each with its cleanup registered
	// once. It is its own allocation, with no New func, so that nothing
	// it holds reaches the pool (see state.c): the runtime keeps a
	// sync.Pool that was used since the last garbage collection reachable
	// through the next one, and an embedded one, or one whose New is a
	// method value of the pool, would keep the pool and its arena alive
	// with it.
	headers *sync.Pool // *Bytes

	// shardTokens holds, for each P that has made a header or pipe, the
	// shard it gave them (see newShard). Its own allocation, for the
	// same reason as headers.
	shardTokens *sync.Pool // *shardToken

	pipeWaiting atomic.Int32 // goroutines parked in pipe reads and writes

	obs observer // Debug, OnLeak and Stats' slow-path counters (see obs.go)

	// local[s] is what shard s keeps beside its rings: its hot block and
	// its stripe.
	_     [cacheline.Size]byte
	local [maxShards]shardLocal
}

// shardLocal is the state of one shard that its holders change as they
// take and free blocks. A full line of padding follows it, and BytesPool
// puts one before the first, so no two shards, and no shard and another
// field, share a cache line wherever the pool starts (a heap object need
// not start on a line).
type shardLocal struct {
	// hot is the shard's hot block (see hot.go): the last single block
	// freed into the shard, kept out of its rings with its reservation;
	// 0 when empty, else the block's index + 1 (block indices are below
	// slab.MaxBlocks, so the sum fits).
	hot atomic.Uint32
	// stripe is the shard's stripe (see stripe.go): fresh blocks carved
	// for the shard and not yet used.
	stripe atomic.Uint64
	_      [cacheline.Size]byte
}

// slabLists is the per-slab state of a pool.
//
// rings[s] holds the free blocks of the slab that were freed into shard s,
// as runs of consecutive blocks: the entry (n-1)<<(32-runBits) | i stands
// for the n blocks from block i on (see entry and run), so the entry of a
// run of one block is the block's index. A read frees every block it
// empties at once, and a write takes the blocks for all its bytes at once,
// so a stream of 32 KiB reads and writes puts back and takes one entry per
// call rather than 8. Each entry costs a Push an atomic store, an exchange
// that waits for the core's store buffer, full of the copy's stores, to
// drain, so fewer entries make a stream measurably cheaper. Each
// ring's capacity is the number of blocks in the slab, and a free block
// sits in one entry of one ring only, so a push never finds a ring full
// for good.
//
// links[j] is the link of the slab's j-th block (see slab.Arena.Locate):
// where the block sits in the chain of the Bytes that holds it. Keeping the
// links here, in one pointer-free array per slab, rather than in each
// Bytes, means a Bytes holds no memory of its own that grows with its
// data: whatever it holds, the garbage collector sees the same few small
// objects per Bytes (its header, its state and its cleanup).
type slabLists struct {
	rings   []*ring.Ring
	links   []link
	first   uint32 // the index of the slab's first block
	runBits uint   // runBits <= maxRunBits; a run has at most 1<<runBits blocks
}

// maxRunBits bounds the length of a run in a ring entry to 16 blocks, the
// most that a write takes at once (its batch of indices); putRuns files a
// longer run as several entries.
const maxRunBits = 4

// runBitsFor returns the runBits of a slab whose last block is block last:
// the high bits of an entry that no block index of the slab needs, at most
// maxRunBits. With none, as in an arena of more than 1<<31 blocks, every
// entry is a run of one block.
func runBitsFor(last uint32) uint {
	return uint(min(maxRunBits, 32-bits.Len32(last)))
}

// entry returns the ring entry of the n blocks from block i on;
// 1 <= n <= 1<<runBits.
func (sl *slabLists) entry(i uint32, n int) uint32 { return uint32(n-1)<<sl.lenShift() | i }

// run returns the first block of entry e and the number of blocks it
// stands for.
func (sl *slabLists) run(e uint32) (i uint32, n int) {
	return e << sl.runBits >> sl.runBits, int(e>>sl.lenShift()) + 1
}

// lenShift is where an entry's length minus one starts; 32 when runBits
// is 0, which shifts every length out (Go defines x>>32 and x<<32 as 0
// for a uint32 x).
func (sl *slabLists) lenShift() uint { return 32 - sl.runBits }

// maxSlabs bounds the number of slabs of an arena: slab k of an unlimited
// arena holds B0<<k blocks (B0 >= 1) and an arena holds at most
// slab.MaxBlocks < 1<<32 blocks, so there are at most 32.
const maxSlabs = 32

// maxBlocks is the most blocks a pool can have: a slab's free ring holds
// at most 1<<31 indices.
const maxBlocks = 1 << 31

// New returns a pool configured by cfg, or an error wrapping
// ErrInvalidConfig that names the offending field. A MaxMemory the system
// will not reserve (more than the address space, or refused) is such an
// error too; it also wraps [slab.ErrNoMemory].
func New(cfg Config) (*BytesPool, error) {
	p, msg, cause := makePool(cfg, "MaxMemory", "BlockSize")
	switch {
	case cause != nil:
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, msg, cause)
	case msg != "":
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, msg)
	}
	p.obs.debug, p.obs.onLeak = cfg.Debug, cfg.OnLeak
	return p, nil
}

// NewBytesPool returns a pool of blocks of blockSize bytes that hands out at
// most maxMemory bytes at once (0 = unlimited); maxMemory must be a multiple
// of blockSize (see Config.MaxMemory). It is New for callers that
// treat a bad size as a programming error: it panics, naming the argument,
// where New returns an error. Unlike a zero Config.BlockSize, a blockSize of
// 0 is an error here.
func NewBytesPool(maxMemory, blockSize int) *BytesPool {
	if blockSize == 0 {
		panic("bytespool: NewBytesPool: blockSize must be positive, got 0")
	}
	p, msg, cause := makePool(Config{MaxMemory: maxMemory, BlockSize: blockSize}, "maxMemory", "blockSize")
	if cause != nil {
		msg += ": " + cause.Error()
	}
	if msg != "" {
		panic("bytespool: NewBytesPool: " + msg)
	}
	return p
}

// makePool validates cfg and makes the pool. A problem comes back as a
// message that calls the two sizes by the given names, with the system's
// error as its cause if the arena could not be reserved.
func makePool(cfg Config, memName, blockName string) (*BytesPool, string, error) {
	bs := cfg.BlockSize
	switch {
	case bs < 0:
		return nil, fmt.Sprintf("%s must not be negative, got %d", blockName, bs), nil
	case bs == 0:
		bs = DefaultBlockSize
	case bs > MaxBlockSize:
		return nil, fmt.Sprintf("%s must be at most %d, got %d", blockName, MaxBlockSize, bs), nil
	}
	switch mem := cfg.MaxMemory; {
	case mem < 0:
		return nil, fmt.Sprintf("%s must not be negative, got %d", memName, mem), nil
	case mem > 0 && mem < bs:
		return nil, fmt.Sprintf("%s %d is smaller than one block (%s %d)", memName, mem, blockName, bs), nil
	case mem%bs != 0:
		return nil, fmt.Sprintf("%s %d is not a multiple of %s %d (%d blocks would be %d bytes)", memName, mem, blockName, bs, mem/bs, mem/bs*bs), nil
	case mem/bs > maxBlocks:
		return nil, fmt.Sprintf("%s %d is more than %d blocks of %s %d", memName, mem, maxBlocks, blockName, bs), nil
	}
	arena, err := slab.New(bs, cfg.MaxMemory/bs)
	if err != nil {
		return nil, fmt.Sprintf("%s %d cannot be reserved", memName, cfg.MaxMemory), err
	}
	p := &BytesPool{
		arena:       arena,
		blockSize:   bs,
		total:       cfg.MaxMemory / bs,
		zero:        cfg.ZeroOnFree,
		headers:     new(sync.Pool),
		shardTokens: new(sync.Pool),
		shardMask:   shardsFor(runtime.GOMAXPROCS(0)) - 1,
	}
	p.capacity = p.total
	if p.total == 0 {
		// An unlimited arena stops growing when it runs out of block
		// indices (or of int offsets, for huge blocks): past that,
		// writers wait like in a full limited pool. Its semaphore
		// starts empty and grows with it (see grow).
		p.capacity = min(slab.MaxBlocks, math.MaxInt/bs)
	}
	p.sema.Init(uint64(p.total), p.shardMask+1)
	// Nothing outside the pool touches the arena once the pool is
	// unreachable: every Bytes and pipe that holds blocks, and every call
	// that has handed them to a caller's io.Writer, keeps the pool alive.
	runtime.AddCleanup(p, (*slab.Arena).Free, arena)
	return p, "", nil
}

// grow makes room in an unlimited pool for a writer that needs need blocks
// and found too few free: it publishes slabs of the arena until it has
// published need blocks or more, adds their blocks to the semaphore, and
// creates their lists. It returns nil, having published nothing, once the
// arena is at its cap: the writer then waits like one of a full limited
// pool. A slab the system refuses is an error wrapping ErrPoolTooSmall and
// slab.ErrNoMemory, for the write that needed it.
//
// A limited pool's semaphore holds all its blocks from the start, and
// getBlocks carves and publishes its slabs as they are first used. An
// unlimited pool's semaphore holds only the blocks of the slabs published
// so far, so that reserved blocks are always in published slabs and
// getBlocks never has to publish one, which could fail after the writer
// has started copying.
func (p *BytesPool) grow(need int) error {
	p.growMu.Lock()
	defer p.growMu.Unlock()
	if int(p.sema.Available()) >= need {
		return nil // another writer grew the pool meanwhile
	}
	added := 0
	var refused error
	for added < need {
		k := p.arena.Slabs()
		n, err := p.arena.Grow()
		if err == slab.ErrFull {
			break
		}
		if err != nil {
			// The slabs published so far stay, for writers that fit
			// in them; this writer does not, and must not wait for
			// blocks that no slab will bring.
			refused = fmt.Errorf("%w: growing the pool: %w", ErrPoolTooSmall, err)
			break
		}
		p.addSlab(k)
		added += n
	}
	if added > 0 {
		// Stats counts the blocks in use as grown less available:
		// raising available first, it may see too few for a moment,
		// never too many.
		p.sema.Release(uint64(added), 0)
		p.grown.Add(int64(added))
	}
	return refused
}

// units returns the blocks the semaphore counts, held or not: all of a
// limited pool's, or those of the slabs an unlimited pool has published.
func (p *BytesPool) units() int {
	if p.total > 0 {
		return p.total
	}
	return int(p.grown.Load())
}

// Stats is a snapshot of a pool's counters. Under concurrent use the fields
// are read one by one, so they need not add up exactly; they are exact when
// no call is in flight.
type Stats struct {
	BlockSize       int
	BlocksTotal     int // capacity in blocks (0 when unlimited)
	BlocksInUse     int // blocks held by Bytes and pipes, or reserved by a writer about to fill them or by the first writer in the wait queue; not the free blocks a shard keeps hot
	BlocksAllocated int // blocks carved so far, less the fresh ones a shard keeps for its next writes (memory touched <= this × BlockSize)
	Waiters         int // goroutines parked waiting for blocks or for pipe data or space

	Waits    uint64        // reservations that had to wait for blocks, since the pool was made
	WaitTime time.Duration // their total time

	// Where the arena's memory lives. Where ArenaInHeap is false (unix,
	// except under the race detector), the arena is memory mapped from
	// the system, outside the Go heap: it is not in runtime.MemStats and
	// does not count toward GOMEMLIMIT or the garbage collector's goal.
	// What of it is resident is at most BlocksAllocated × BlockSize, less
	// what Trim gave back of blocks not used since.
	ArenaBytes   int    // address space the arena has reserved (all of MaxMemory, for a limited pool), or Go heap it has allocated
	ArenaInHeap  bool   // the arena is Go heap memory, counted by the runtime like any allocation
	TrimmedBytes uint64 // bytes Trim has given back to the system, in all

	// BlockWaiters is how many goroutines are queued for blocks: writers
	// of Bytes and of pipes. Waiters counts them too, and the goroutines
	// parked in pipes for data, for room or for their turn besides.
	BlockWaiters int
	// OldestWait is how long the writer first in the queue for blocks,
	// the one that has waited longest, has waited so far; 0 if none. It
	// grows from one Stats call to the next while that writer is stuck.
	OldestWait time.Duration
	// PeakInUse is the most blocks in use at once since the pool was
	// made, as far as the pool has looked: at least the largest
	// BlocksInUse that Stats has returned, and at least the blocks in
	// use (in BlocksInUse's sense) at every moment the queue for blocks
	// changed: when a writer joined it, was granted its blocks, or left
	// it. So it is exact when the peak came with a writer waiting, as
	// in a limited pool that ran dry; a peak that came and went while
	// nobody waited, between two Stats calls, may be missed. The fast
	// paths of Write, Read and Free keep no count of their own. Under
	// concurrency a sample may count blocks that calls in flight are
	// taking or giving back, as BlocksInUse may; it never passes the
	// pool's capacity.
	PeakInUse int
	// Rejected counts the writes, ReadFroms and WriteTos into a Bytes
	// that were refused, in whole or in part, with ErrPoolTooSmall or
	// ErrBytesCapacityTooSmall.
	Rejected uint64
	// Leaks counts the Bytes and pipes that the garbage collector
	// reclaimed without Free or Close (see Config.OnLeak).
	Leaks uint64
}

// Stats returns a snapshot of the pool's counters.
func (p *BytesPool) Stats() Stats {
	p.mustBeMade("Stats")
	waits, waitTime := p.sema.Waits()
	// A block can move from the semaphore through a holder into a hot
	// slot between the two reads and count as free twice; a snapshot
	// need not add up exactly, but it must not go below zero.
	inUse := max(0, p.units()-int(p.sema.Available())-p.hotBlocks())
	// The stripes first: a block in a stripe was carved before, so
	// this never goes below zero.
	striped := p.stripedBlocks()
	allocated := p.arena.Carved() - striped
	s := Stats{
		BlockSize:       p.blockSize,
		BlocksTotal:     p.total,
		BlocksInUse:     inUse,
		BlocksAllocated: allocated,
		Waiters:         p.sema.Waiting() + int(p.pipeWaiting.Load()),
		Waits:           waits,
		WaitTime:        waitTime,
		ArenaBytes:      p.arena.Reserved(),
		ArenaInHeap:     !slab.Mapped,
		TrimmedBytes:    p.trimmed.Load(),
	}
	p.fillObsStats(&s)
	return s
}

// mustBeMade panics, naming the method, if p is not a pool that New or
// NewBytesPool made: the zero BytesPool has no arena to hand out.
func (p *BytesPool) mustBeMade(method string) {
	if p == nil || p.headers == nil {
		panic("bytespool: " + method + " on a BytesPool not made by New or NewBytesPool")
	}
}

// Trim gives the memory of the pool's free blocks back to the operating
// system and returns how many bytes it gave back: the whole pages that free
// blocks cover, so with blocks smaller than a page, only pages all of
// whose blocks are free. The blocks stay in the pool and come back
// zero-filled on their next use, when the system backs them with memory
// again. ZeroOnFree is unaffected: a block is still wiped when it is freed.
//
// Trim returns 0 where the arena is Go heap memory (see Stats.ArenaInHeap)
// or the platform cannot release memory (only Linux can so far).
//
// Trim is safe to call at any time, concurrently with everything else. It
// never releases memory of a block that is held or about to be filled: it
// takes each free run off its ring while it releases it, so a writer that
// wants one of those blocks waits the moment that takes. A pool never
// trims by itself; a program that wants it to can call Trim from a
// time.Ticker, or after a burst.
func (p *BytesPool) Trim() int {
	p.mustBeMade("Trim")
	if !slab.Mapped {
		return 0
	}
	// Hot blocks go back to the rings, to be trimmed with the rest.
	// Stripes hold only blocks never touched, with nothing to give back.
	for s := range p.shardMask + 1 {
		p.drainHot(s)
	}
	released := 0
	var es [64]uint32
	for k := range int(p.nslabs.Load()) {
		sl := p.slabs[k].Load()
		for _, r := range sl.rings {
			// Each entry that was in the ring when Trim came is taken
			// once; those pushed meanwhile may be taken instead, which
			// only changes which free runs are trimmed.
			for left := r.Len(); left > 0; {
				n := r.PopN(es[:min(left, len(es))])
				if n == 0 {
					break
				}
				left -= n
				for _, e := range es[:n] {
					i, m := sl.run(e)
					released += p.arena.Release(i, m)
				}
				pushAll(r, es[:n])
			}
		}
	}
	p.trimmed.Add(uint64(released))
	return released
}

// blocksFor returns how many blocks n bytes fill, rounding up.
func (p *BytesPool) blocksFor(n int) int { return (n + p.blockSize - 1) / p.blockSize }

// tooBig reports whether holding n blocks at once is beyond the pool.
func (p *BytesPool) tooBig(n int) bool { return n > p.capacity }

// getBlocks fills dst with free blocks for a holder whose home shard is
// shard. The caller must have reserved them in p.sema, which guarantees
// that that many blocks are free in the rings, the hot slots, the stripes,
// or still uncarved. Blocks come from the rings first: the home shard's,
// then the others', each from the newest slab's ring first, with one CAS
// per ring (see take). Then from the home shard's hot block, its stripe
// and fresh stripes carved from the slabs allocated so far (see carve).
// Only once those are used up do they come from the other shards' hot
// blocks and stripes, so that a core does not take the block that another
// is about to reuse, nor one beside the blocks that another core uses (see
// stripe.go); and only once those are gone too does a limited arena
// publish its next slab. So the memory touched exceeds the most ever held
// at once by at most one block per other shard (their hot blocks). (An
// unlimited arena's slabs are published before their blocks are reserved;
// see grow.)
//
// A ring's Pop may report empty while a Push that claimed an earlier slot
// is still publishing (see package ring), or while another take holds the
// rest of a run it split and has yet to push back; the reservation says
// the blocks are there, so the loop tries again. Either is usually a few
// instructions from done, so the first retries are immediate; only if it
// stays undone (its goroutine was preempted) does the loop yield.
func (p *BytesPool) getBlocks(dst []uint32, shard int) {
	// Usually the home shard's ring of the newest slab has them all.
	// That slab's lists are there: addSlab publishes them before it
	// raises nslabs. This is take, written out, to keep a call off the
	// path of every small write (bench/RESULTS.md has the A/B).
	got := 0
	if k := p.nslabs.Load() - 1; k >= 0 {
		sl := p.slabs[k].Load()
		n, items := sl.rings[shard].PopWeighted(dst, len(dst), sl.lenShift())
		if n != items {
			items = sl.expand(shard, dst, n, items)
		}
		if items == len(dst) {
			return
		}
		got = items
	}
	for tries := 0; ; tries++ {
		for i := 0; i <= p.shardMask && got < len(dst); i++ {
			s := (shard + i) & p.shardMask
			for k := int(p.nslabs.Load()) - 1; k >= 0 && got < len(dst); k-- {
				if sl := p.slabs[k].Load(); sl != nil {
					got += sl.take(s, dst[got:])
				}
			}
		}
		got += p.reuseHot(dst[got:], shard, false) // the home shard's hot block
		got += p.carve(dst[got:], shard, false)    // its stripe, fresh blocks of the slabs so far
		got += p.reuseHot(dst[got:], shard, true)  // the other shards' hot blocks
		for i := 1; i <= p.shardMask && got < len(dst); i++ {
			got += p.takeStripe(dst[got:], (shard+i)&p.shardMask) // and their stripes
		}
		got += p.carve(dst[got:], shard, true) // a new slab, if the arena is unlimited
		if got == len(dst) {
			return
		}
		if tries >= busyTries {
			runtime.Gosched()
		}
	}
}

// busyTries is how many times getBlocks and pushAll retry a ring before
// they start yielding between tries.
const busyTries = 64

// getBlock takes one reserved block, as getBlocks does.
func (p *BytesPool) getBlock(shard int) uint32 {
	var one [1]uint32
	p.getBlocks(one[:], shard)
	return one[0]
}

// shardsFor returns the number of shards for a pool made at the given
// GOMAXPROCS: the next power of two, at most maxShards.
func shardsFor(procs int) int {
	n := 1
	for n < procs && n < maxShards {
		n *= 2
	}
	return n
}

// maxShards bounds the shards of a pool: each shard's rings cost 8 bytes
// per block of the arena.
const maxShards = 8

// newShard returns the home shard for a new Bytes header or pipe: the
// shard of the P it runs on, as far as the pool can tell. Each P that has
// made one keeps a token in shardTokens naming its shard; a P without one
// takes the next shard in turn. A sync.Pool's Get returns the calling P's
// own item first and never takes another P's private item, and the token
// goes back at once, so it stays with its P. A sync.Pool drops an item that
// nobody took through two garbage collections, so NewBytes looks at the
// token now and then (see shardRecheck), which keeps it; a P that makes no
// Bytes for that long may draw a new one. (Under the race detector
// sync.Pool also drops items at random.)
//
// Why per P and not simply in turn: headers then travel with the per-P
// header pool, so a P's headers share its shard. Taken in turn, the headers
// of two busy cores landed on one shard whenever each core had made an
// even number of them before, and the cores then shared that shard's hot
// block and rings, passing their cache lines back and forth on every op
// (bench/RESULTS.md has the measurements).
func (p *BytesPool) newShard() int {
	if t, _ := p.shardTokens.Get().(*shardToken); t != nil {
		p.shardTokens.Put(t)
		return t.shard
	}
	t := &shardToken{shard: int(p.nextShard.Inc()) & p.shardMask}
	p.shardTokens.Put(t)
	return t.shard
}

// A shardToken names the home shard of a P's new headers (see newShard).
type shardToken struct{ shard int }

// shardRecheck is how many times NewBytes reissues a header between two
// looks at the calling P's shard token (newShard), which keep the token
// alive while its P is busy and give the header its P's shard.
//
// Tokens used to be looked at only when a header was made: a P that kept
// reissuing its headers lost its token two collections later, the next
// header it made drew the next shard in turn, and two busy Ps then often
// shared a shard. A look costs a sync.Pool Get and Put, a good part of a
// small op, so it is taken only once in shardRecheck reissues.
const shardRecheck = 256

// addSlab publishes the lists of slab k: its free rings, one per shard,
// and its links.
func (p *BytesPool) addSlab(k int) {
	p.slabsMu.Lock()
	defer p.slabsMu.Unlock()
	if p.slabs[k].Load() != nil {
		return
	}
	n := p.arena.SlabBlocks(k)
	sl := &slabLists{
		rings: make([]*ring.Ring, p.shardMask+1),
		links: make([]link, n),
	}
	for i := range k {
		sl.first += uint32(p.arena.SlabBlocks(i))
	}
	sl.runBits = runBitsFor(sl.first + uint32(n-1))
	for s := range sl.rings {
		sl.rings[s] = ring.New(n)
	}
	p.slabs[k].Store(sl)
	if int32(k+1) > p.nslabs.Load() {
		p.nslabs.Store(int32(k + 1))
	}
}

// link returns the link of block i, which the caller holds.
func (p *BytesPool) link(i uint32) *link {
	k, j := p.arena.Locate(i)
	return &p.slabs[k].Load().links[j]
}

// span returns the memory and the links of block i and of the blocks
// after it in its slab, in order, so that a run of consecutive blocks can
// be copied across at once: mem[j*blockSize:] starts block i+j, and
// links[j] is its link.
func (p *BytesPool) span(i uint32) (mem []byte, links []link) {
	k, j := p.arena.Locate(i)
	return p.arena.Slab(k)[j*p.blockSize:], p.slabs[k].Load().links[j:]
}

// A blockRun is the n blocks from block first on.
type blockRun struct{ first, n uint32 }

// putRuns returns runs of blocks to their slabs' rings in the given shard.
// The caller wipes blocks that a holder used (see wipe) before, and after
// the push releases their reservations with p.sema.Release, so that a
// writer granted those reservations finds the blocks.
//
// Each run becomes one ring entry per 1<<runBits blocks, and the part of a
// run that crosses into the next slab goes to that slab's ring; the
// entries for one slab go to its ring with one CAS.
func (p *BytesPool) putRuns(runs []blockRun, shard int) {
	var es [16]uint32
	m := 0
	var sl *slabLists // the slab of es; its blocks are the len(sl.links) indices from sl.first on
	for _, r := range runs {
		for r.n > 0 {
			if sl == nil || r.first-sl.first >= uint32(len(sl.links)) {
				if m > 0 {
					pushAll(sl.rings[shard], es[:m])
					m = 0
				}
				sl = p.slabs[p.arena.SlabOf(r.first)].Load()
			}
			n := min(r.n, 1<<sl.runBits, sl.first+uint32(len(sl.links))-r.first)
			es[m] = sl.entry(r.first, int(n))
			if m++; m == len(es) {
				pushAll(sl.rings[shard], es[:m])
				m = 0
			}
			r.first += n
			r.n -= n
		}
	}
	if m > 0 {
		pushAll(sl.rings[shard], es[:m])
	}
}

// take fills dst with blocks from the runs in the slab's ring of shard s,
// as far as they go, and returns how many it stored. A run longer than dst
// still needs is split, and the rest of it goes back to the ring's tail.
//
// Each entry is at least one block, so the entries of len(dst) blocks fit
// in dst. Entries of one block are the blocks themselves, so only longer
// runs need expand.
func (sl *slabLists) take(s int, dst []uint32) int {
	n, items := sl.rings[s].PopWeighted(dst, len(dst), sl.lenShift())
	if n != items {
		return sl.expand(s, dst, n, items)
	}
	return n
}

// expand turns the first n values of dst, entries that take popped from
// ring s and that stand for items blocks, into those blocks, and returns
// how many it stored: if items is more than len(dst), the last entry's
// rest goes back to the ring.
func (sl *slabLists) expand(s int, dst []uint32, n, items int) int {
	if items > len(dst) { // the last entry only: PopWeighted stops at len(dst)
		last := &dst[n-1]
		i, m := sl.run(*last)
		k := m - (items - len(dst))
		rest := [1]uint32{sl.entry(i+uint32(k), m-k)}
		pushAll(sl.rings[s], rest[:])
		*last, items = sl.entry(i, k), len(dst)
	}
	// Last first: the blocks of entry e go to dst[e] or later, so they
	// overwrite only entries already expanded.
	end := items
	for e := n - 1; e >= 0; e-- {
		i, m := sl.run(dst[e])
		end -= m
		for t := range m {
			dst[end+t] = i + uint32(t)
		}
	}
	return items
}

// pushAll pushes es onto r, a ring of a slab's free runs. The ring has
// room for every block of its slab, so it takes only part of es while a
// Pop that freed a slot is finishing.
func pushAll(r *ring.Ring, es []uint32) {
	pushed := r.PushN(es)
	for tries := 0; pushed < len(es); tries++ {
		if tries >= busyTries {
			runtime.Gosched()
		}
		pushed += r.PushN(es[pushed:])
	}
}

// freeBlock gives one block of a Bytes back, with its reservation, wiped
// if the pool zeroes on free: as the shard's hot block if that is empty,
// else as ringBlock does.
func (p *BytesPool) freeBlock(i uint32, shard int) {
	p.wipe(blockRun{first: i, n: 1})
	if !p.putHot(i, shard) {
		p.ringBlock(i, shard)
	}
}

// wipe clears the blocks of r if the pool zeroes on free.
func (p *BytesPool) wipe(r blockRun) {
	if p.zero {
		for i := range r.n {
			clear(p.arena.Block(r.first + i))
		}
	}
}

// ringBlock gives one block, which the caller has wiped if it was written
// (see wipe), back to its ring in the given shard, and its reservation to
// the semaphore.
func (p *BytesPool) ringBlock(i uint32, shard int) {
	one := [1]blockRun{{first: i, n: 1}}
	p.putRuns(one[:], shard)
	p.sema.Release(1, shard)
}

// freer gives blocks back to the pool in batches: runs of consecutive
// blocks, one ring entry per run (see putRuns), and one semaphore release
// for the lot. Use it on the stack: add each block or run, then call done
// once.
type freer struct {
	pool  *BytesPool
	shard int
	hot   bool // a lone block may become the shard's hot block (see hot.go)
	runs  [16]blockRun
	n     int // runs queued
	total int // blocks added
}

// add queues block i.
func (f *freer) add(i uint32) { f.addRun(i, 1) }

// addRun queues the n blocks from first on, as part of the last run
// queued when they follow it, so that blocks added one at a time in order
// (addList, the pipe's reader) still go back as runs.
func (f *freer) addRun(first uint32, n int) {
	f.total += n
	if f.n > 0 {
		if r := &f.runs[f.n-1]; r.first+r.n == first {
			r.n += uint32(n)
			return
		}
		if f.n == len(f.runs) {
			f.flush()
		}
	}
	f.runs[f.n] = blockRun{first, uint32(n)}
	f.n++
}

// addList empties l into f.
func (f *freer) addList(l *blockList) {
	for l.blocks > 0 {
		f.add(l.pop(f.pool.link(l.head)))
	}
}

// flush pushes the runs queued so far.
func (f *freer) flush() {
	for _, r := range f.runs[:f.n] {
		f.pool.wipe(r)
	}
	f.pool.putRuns(f.runs[:f.n], f.shard)
	f.n = 0
}

// done returns what is left and releases the reservations of every block
// added. With hot set, a lone block goes back as freeBlock gives it: to
// the shard's hot slot if that is empty.
func (f *freer) done() {
	if f.hot && f.total == 1 { // runs[0] is the block: addRun flushes only a full runs
		f.pool.freeBlock(f.runs[0].first, f.shard)
		return
	}
	if f.n > 0 {
		f.flush()
	}
	if f.total > 0 {
		f.pool.sema.Release(uint64(f.total), f.shard)
	}
}
