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
	"runtime"
	"sync"
	"time"

	"go.uber.org/atomic"

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
	// What it costs: a small message (a Bytes made, written, read and
	// freed) takes an order of magnitude longer, with a handful of
	// allocations per Bytes: a new header every time and the two stacks
	// it records (bench/RESULTS.md has the figures). The promise of zero
	// allocations in steady state holds only without Debug.
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

	// HighWater and LowWater, in bytes in use, are the marks at which
	// the pool calls OnPressure: OnPressure(true) once when the blocks
	// in use (held by Bytes and pipes, or reserved by a writer about to
	// fill them) reach HighWater, and OnPressure(false) once when they
	// later fall to LowWater or below. The calls alternate, true first,
	// and never overlap. A mark between two multiples of BlockSize
	// counts as the block it falls in: HighWater is reached when the
	// blocks in use times BlockSize reach it. 0 is off. New requires
	// LowWater < HighWater <= MaxMemory (any HighWater, if MaxMemory is
	// 0), and OnPressure to be set with HighWater and only with it.
	//
	// What it costs: a pool with HighWater set keeps an exact count of
	// the blocks in use, one more atomic add on each reservation and
	// free; a pool without it pays a nil check.
	HighWater, LowWater int
	// OnPressure is called, with high true or false, as HighWater
	// describes; use it to shed load (stop accepting connections, say)
	// and take it up again. It runs on the goroutine whose write or free
	// crossed the mark, after that call has released every lock of the
	// pool, its Bytes and pipes, just before it returns; if another call
	// of OnPressure is running then, that goroutine makes the next call
	// instead, once the running one returns. So OnPressure may call any
	// method of the pool and free or write to Bytes, even if that
	// crosses a mark again (the next call then follows once it returns);
	// it holds up the goroutine that runs it, and the next calls, for as
	// long as it runs. Each call looks at the count when it is made: a
	// mark crossed and crossed back in between may go unreported, but
	// the last call made always matches the count once the calls in
	// flight are done.
	OnPressure func(high bool)
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
	allocator // the arena and who may have which of its blocks (see blocks.go)

	// headers holds free Bytes headers, each with its cleanup registered
	// once. It is its own allocation, with no New func, so that nothing
	// it holds reaches the pool (see state.c): the runtime keeps a
	// sync.Pool that was used since the last garbage collection reachable
	// through the next one, and an embedded one, or one whose New is a
	// method value of the pool, would keep the pool and its arena alive
	// with it.
	headers *sync.Pool // *Bytes

	pipeWaiting atomic.Int32 // goroutines parked in pipe reads and writes

	obs observer // Debug, OnLeak and Stats' slow-path counters (see obs.go)
}

// New returns a pool configured by cfg, or an error wrapping
// ErrInvalidConfig that names the offending field. A MaxMemory the system
// will not reserve (more than the address space, or refused) is such an
// error too; it also wraps [slab.ErrNoMemory].
func New(cfg Config) (*BytesPool, error) {
	if msg := checkPressure(cfg); msg != "" {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, msg)
	}
	p, msg, cause := makePool(cfg, "MaxMemory", "BlockSize")
	switch {
	case cause != nil:
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, msg, cause)
	case msg != "":
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, msg)
	}
	p.obs.debug, p.obs.onLeak = cfg.Debug, cfg.OnLeak
	p.press = newPressure(cfg, p.blockSize) // before anyone can use p
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
	p := &BytesPool{headers: new(sync.Pool)}
	p.allocator.init(arena, cfg.MaxMemory/bs, cfg.ZeroOnFree)
	// Nothing outside the pool touches the arena once the pool is
	// unreachable: every Bytes and pipe that holds blocks, and every call
	// that has handed them to a caller's io.Writer, keeps the pool alive.
	runtime.AddCleanup(p, (*slab.Arena).Free, arena)
	return p, "", nil
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
	// of Bytes and of pipes, in the pool's queue or at a budget's cap. Waiters counts them too, and the goroutines
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
	s := Stats{Waiters: int(p.pipeWaiting.Load())}
	p.allocator.fillStats(&s)
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
	return p.trim()
}
