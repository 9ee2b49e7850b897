package bytespool

// This file is the block allocator, the pool's one door to its blocks (see
// allocator): the reservation semaphore, the slabs' free rings and links,
// the shards with their hot blocks and stripes, growth and trimming.

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"go.uber.org/atomic"

	"github.com/zjj/bytespool/internal/cacheline"
	"github.com/zjj/bytespool/internal/park"
	"github.com/zjj/bytespool/ring"
	"github.com/zjj/bytespool/slab"
)

// allocator hands out the blocks of a pool's arena: it decides whether a
// holder may have more blocks (the reservation semaphore), which free block
// it gets (rings, hot blocks, stripes, shards), and where a freed block
// goes. It is the pool's only door to its blocks: the Bytes, the chain and
// the pipe call the methods below and never its fields.
//
// The reservation invariant, which every method here keeps and the rest of
// the package relies on: every block the pool can hand out is in exactly
// one place at a time: held (by a Bytes, a pipe, or a call about to fill
// it), in a free ring, in a hot slot, in a stripe, or not yet carved (of a
// published slab, for an unlimited pool; see grow). sema counts as
// available exactly the blocks in the rings, the stripes and not yet
// carved; a hot block keeps the reservation of its last holder (see hot
// blocks below). So a holder that reserved n blocks can always take n
// (getBlocks), though it may have to look in several places and, while
// another goroutine is between two of them, retry.
type allocator struct {
	arena     *slab.Arena
	blockSize int
	total     int // blocks; 0 = unlimited
	capacity  int // blocks the pool can ever hand out: total, or all an unlimited arena can name
	zero      bool

	// press, if HighWater is set, counts the blocks holders have
	// reserved, exactly: every door method that hands reservations to a
	// holder or takes them back tells it (see count). nil otherwise, so
	// that a pool without HighWater pays one nil check.
	press *pressure

	// sema counts the blocks that may still be handed out, spread over
	// the same shards as the rings: all of a limited pool's, and the
	// blocks of the slabs an unlimited pool has published (see grow). A
	// writer reserves every block it needs here before it takes any, so
	// it never holds some while waiting for the rest.
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

	// shardTokens holds, for each P that has made a header or pipe, the
	// shard it gave them (see newShard). It is its own allocation, with
	// no New func, for the reason BytesPool.headers is.
	shardTokens *sync.Pool // *shardToken

	// local[s] is what shard s keeps beside its rings: its hot block and
	// its stripe.
	_     [cacheline.Size]byte
	local [maxShards]shardLocal
}

// init makes a the allocator of arena, limited to total blocks (0 =
// unlimited), wiping freed blocks if zero is set.
func (a *allocator) init(arena *slab.Arena, total int, zero bool) {
	bs := arena.BlockSize()
	a.arena, a.blockSize, a.total, a.zero = arena, bs, total, zero
	a.shardTokens = new(sync.Pool)
	a.shardMask = shardsFor(runtime.GOMAXPROCS(0)) - 1
	a.capacity = total
	if total == 0 {
		// An unlimited arena stops growing when it runs out of block
		// indices (or of int offsets, for huge blocks): past that,
		// writers wait like in a full limited pool. Its semaphore
		// starts empty and grows with it (see grow).
		a.capacity = min(slab.MaxBlocks, math.MaxInt/bs)
	}
	a.sema.Init(uint64(total), a.shardMask+1)
}

// The door: reserving blocks.

// tryReserve reserves n blocks for a holder whose home shard is shard, if
// they are free and nobody is queued for blocks.
func (a *allocator) tryReserve(n, shard int) bool {
	ok := a.sema.TryAcquire(uint64(n), shard)
	if ok && a.press != nil {
		a.press.add(n)
	}
	return ok
}

// count tells the pressure count that holders took n more reservations
// (n < 0: gave them back), if the pool keeps one.
func (a *allocator) count(n int) {
	if a.press != nil {
		a.press.add(n)
	}
}

// enqueue joins the queue for n blocks on behalf of owner (see abort),
// without waiting; the caller must then call wait exactly once. An
// unlimited pool first grows to have them, and a queue with nobody ahead
// grants them at once, so wait then returns at once. It fails, without
// queueing, only where an unlimited pool's growth was refused. Every hot
// block goes back to the rings as the waiter joins, so that the queue gets
// those blocks too (see hot blocks below).
func (a *allocator) enqueue(n int, owner any) (park.Waiter, error) {
	if a.total == 0 {
		if err := a.grow(n); err != nil {
			return park.Waiter{}, err
		}
	}
	q := a.sema.Enqueue(uint64(n), owner)
	for s := range a.shardMask + 1 {
		a.drainHot(s)
	}
	return q, nil
}

// wait waits, in arrival order, for the n blocks enqueue asked for, until
// ctx ends or abort names the waiter's owner (see park.Sema.Wait).
func (a *allocator) wait(ctx context.Context, q park.Waiter, n int) error {
	err := a.sema.Wait(ctx, q)
	if err == nil {
		a.count(n)
	}
	return err
}

// release gives back n reservations whose blocks the caller did not take,
// or has given back to the rings, into shard.
func (a *allocator) release(n, shard int) {
	if n > 0 {
		a.count(-n)
		a.sema.Release(uint64(n), shard)
	}
}

// abort makes every queued waiter of owner return err from wait.
func (a *allocator) abort(owner any, err error) { a.sema.Abort(owner, err) }

// abortOver makes the queued waiters of owner that asked for more than max
// blocks return err from wait.
func (a *allocator) abortOver(owner any, max int, err error) {
	a.sema.AbortOver(owner, uint64(max), err)
}

// pipeShards returns the home shards of a new pipe's two ends. The two
// ends run on different cores, so the reader frees into the shard after the
// writer's: each side then updates its own shard's count, and the writer,
// whenever its shard runs dry, takes half the reader's in one go (see
// park.Sema.TryAcquire), instead of both sides moving one cache line
// between the cores for every block. The writer takes the blocks
// themselves from the reader's shard first (getBlocks with the reader's
// shard), so the pipe cycles through its own blocks. The reader's shard
// has the higher index: Stats sums the shards in index order, so a block
// that the writer takes and the reader frees while Stats reads is never
// counted as in use twice.
func (a *allocator) pipeShards() (writer, reader int) {
	writer = a.newShard()
	if writer == a.shardMask && writer > 0 {
		writer--
	}
	return writer, (writer + 1) & a.shardMask
}

// block returns the memory of block i, which the caller holds, with
// len == cap == the block size.
func (a *allocator) block(i uint32) []byte { return a.arena.Block(i) }

// fillStats fills in the counts of s that the allocator keeps.
func (a *allocator) fillStats(s *Stats) {
	waits, waitTime := a.sema.Waits()
	// A block can move from the semaphore through a holder into a hot
	// slot between the two reads and count as free twice; a snapshot
	// need not add up exactly, but it must not go below zero.
	inUse := max(0, a.units()-int(a.sema.Available())-a.hotBlocks())
	// The stripes first: a block in a stripe was carved before, so
	// this never goes below zero.
	striped := a.stripedBlocks()
	s.BlockSize = a.blockSize
	s.BlocksTotal = a.total
	s.BlocksInUse = inUse
	s.BlocksAllocated = a.arena.Carved() - striped
	s.Waiters += a.sema.Waiting()
	s.Waits, s.WaitTime = waits, waitTime
	s.BlockWaiters = a.sema.Waiting()
	if start, ok := a.sema.OldestStart(); ok {
		s.OldestWait = max(0, time.Since(start))
	}
	a.sema.Observe(uint64(inUse)) // a sample of the peak (see Stats.PeakInUse)
	s.PeakInUse = int(min(a.sema.Peak(), uint64(a.capacity)))
	s.ArenaBytes = a.arena.Reserved()
	s.ArenaInHeap = !slab.Mapped
	s.TrimmedBytes = a.trimmed.Load()
}

// The rest of the allocator: slabs and their lists, getting and giving
// back blocks, growing, trimming.

// shardLocal is the state of one shard that its holders change as they
// take and free blocks. A full line of padding follows it, and allocator
// puts one before the first, so no two shards, and no shard and another
// field, share a cache line wherever the pool starts (a heap object need
// not start on a line).
type shardLocal struct {
	// hot is the shard's hot block (see hot blocks below): the last
	// single block freed into the shard, kept out of its rings with its
	// reservation; 0 when empty, else the block's index + 1 (block indices are below
	// slab.MaxBlocks, so the sum fits).
	hot atomic.Uint32
	// stripe is the shard's stripe (see stripes below): fresh blocks
	// carved for the shard and not yet used.
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
//
// The rings are values in one array, and their slots and the links share
// one pointer-free array from the arena's Meta, outside the Go heap where
// the arena is (see newSlabLists): the collector marks every live heap
// object at every cycle, and scans the pointerful ones, and a slab costs
// it two small objects, however many shards the pool has (three where the
// arena is on the heap). The pointers into that array, in
// the slabLists and in the chains that hold the slab's blocks, are all
// dropped before the pool is unreachable, and the arena unmaps it only
// after (see slab.Arena.Meta).
type slabLists struct {
	rings   []ring.Ring // len == shards
	links   []link
	first   uint32 // the index of the slab's first block
	runBits uint   // runBits <= maxRunBits; a run has at most 1<<runBits blocks
}

// slabListsWords returns the words of memory that the rings' slots and
// the links of a slab of n blocks take, in a pool of the given shards.
func slabListsWords(n, shards int) int {
	// A link takes 12 bytes: 3 words for every 2 blocks.
	return shards*ring.Slots(n) + (3*n+1)/2
}

// newSlabLists returns the lists of a slab of n blocks, with empty rings:
// two heap objects, the lists and their rings, and buf, of
// slabListsWords(n, shards) words, with the rings' slots and the links.
func newSlabLists(n, shards int, buf []uint64) *slabLists {
	sl := &slabLists{rings: make([]ring.Ring, shards)}
	// The slots of each ring, then the links.
	m := ring.Slots(n)
	for s := range sl.rings {
		sl.rings[s].InitIn(buf[s*m : (s+1)*m : (s+1)*m])
	}
	// A link is three uint32s, which the words of buf align.
	sl.links = unsafe.Slice((*link)(unsafe.Pointer(&buf[shards*m])), n)
	return sl
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
func (a *allocator) grow(need int) error {
	a.growMu.Lock()
	defer a.growMu.Unlock()
	if int(a.sema.Available()) >= need {
		return nil // another writer grew the pool meanwhile
	}
	added := 0
	var refused error
	for added < need {
		k := a.arena.Slabs()
		n, err := a.arena.Grow()
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
		a.addSlab(k)
		added += n
	}
	if added > 0 {
		// Stats counts the blocks in use as grown less available:
		// raising available first, it may see too few for a moment,
		// never too many.
		a.sema.Release(uint64(added), 0)
		a.grown.Add(int64(added))
	}
	return refused
}

// units returns the blocks the semaphore counts, held or not: all of a
// limited pool's, or those of the slabs an unlimited pool has published.
func (a *allocator) units() int {
	if a.total > 0 {
		return a.total
	}
	return int(a.grown.Load())
}

// trim is Trim.
func (a *allocator) trim() int {
	if !slab.Mapped {
		return 0
	}
	// Hot blocks go back to the rings, to be trimmed with the rest.
	// Stripes hold only blocks never touched, with nothing to give back.
	for s := range a.shardMask + 1 {
		a.drainHot(s)
	}
	released := 0
	var es [64]uint32
	for k := range int(a.nslabs.Load()) {
		sl := a.slabs[k].Load()
		for s := range sl.rings {
			r := &sl.rings[s]
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
					released += a.arena.Release(i, m)
				}
				pushAll(r, es[:n])
			}
		}
	}
	a.trimmed.Add(uint64(released))
	return released
}

// blocksFor returns how many blocks n bytes fill, rounding up.
func (a *allocator) blocksFor(n int) int { return (n + a.blockSize - 1) / a.blockSize }

// getBlocks fills dst with free blocks for a holder whose home shard is
// shard. The caller must have reserved them (tryReserve, or enqueue and
// wait), so that many blocks are free somewhere (see allocator). Blocks come from the rings first: the home shard's,
// then the others', each from the newest slab's ring first, with one CAS
// per ring (see take). Then from the home shard's hot block, its stripe
// and fresh stripes carved from the slabs allocated so far (see carve).
// Only once those are used up do they come from the other shards' hot
// blocks and stripes, so that a core does not take the block that another
// is about to reuse, nor one beside the blocks that another core uses (see
// stripes); and only once those are gone too does a limited arena
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
func (a *allocator) getBlocks(dst []uint32, shard int) {
	// Usually the home shard's ring of the newest slab has them all.
	// That slab's lists are there: addSlab publishes them before it
	// raises nslabs. This is take, written out, to keep a call off the
	// path of every small write (bench/RESULTS.md has the A/B).
	got := 0
	if k := a.nslabs.Load() - 1; k >= 0 {
		sl := a.slabs[k].Load()
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
		for i := 0; i <= a.shardMask && got < len(dst); i++ {
			s := (shard + i) & a.shardMask
			for k := int(a.nslabs.Load()) - 1; k >= 0 && got < len(dst); k-- {
				if sl := a.slabs[k].Load(); sl != nil {
					got += sl.take(s, dst[got:])
				}
			}
		}
		got += a.reuseHot(dst[got:], shard, false) // the home shard's hot block
		got += a.carve(dst[got:], shard, false)    // its stripe, fresh blocks of the slabs so far
		got += a.reuseHot(dst[got:], shard, true)  // the other shards' hot blocks
		for i := 1; i <= a.shardMask && got < len(dst); i++ {
			got += a.takeStripe(dst[got:], (shard+i)&a.shardMask) // and their stripes
		}
		got += a.carve(dst[got:], shard, true) // a new slab, if the arena is unlimited
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
func (a *allocator) getBlock(shard int) uint32 {
	var one [1]uint32
	a.getBlocks(one[:], shard)
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
func (a *allocator) newShard() int {
	if t, _ := a.shardTokens.Get().(*shardToken); t != nil {
		a.shardTokens.Put(t)
		return t.shard
	}
	t := &shardToken{shard: int(a.nextShard.Inc()) & a.shardMask}
	a.shardTokens.Put(t)
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
func (a *allocator) addSlab(k int) {
	a.slabsMu.Lock()
	defer a.slabsMu.Unlock()
	if a.slabs[k].Load() != nil {
		return
	}
	n := a.arena.SlabBlocks(k)
	shards := a.shardMask + 1
	words := slabListsWords(n, shards)
	buf, err := a.arena.Meta(words)
	if err != nil {
		// The system refused a mapping for bookkeeping whose slab it
		// has mapped: the heap will do, at some cost to each garbage
		// collection, rather than fail a write that has its blocks.
		buf = make([]uint64, words)
	}
	sl := newSlabLists(n, shards, buf)
	for i := range k {
		sl.first += uint32(a.arena.SlabBlocks(i))
	}
	sl.runBits = runBitsFor(sl.first + uint32(n-1))
	a.slabs[k].Store(sl)
	if int32(k+1) > a.nslabs.Load() {
		a.nslabs.Store(int32(k + 1))
	}
}

// link returns the link of block i, which the caller holds.
func (a *allocator) link(i uint32) *link {
	k, j := a.arena.Locate(i)
	return &a.slabs[k].Load().links[j]
}

// span returns the memory and the links of block i and of the blocks
// after it in its slab, in order, so that a run of consecutive blocks can
// be copied across at once: mem[j*blockSize:] starts block i+j, and
// links[j] is its link.
func (a *allocator) span(i uint32) (mem []byte, links []link) {
	k, j := a.arena.Locate(i)
	return a.arena.Slab(k)[j*a.blockSize:], a.slabs[k].Load().links[j:]
}

// A blockRun is the n blocks from block first on.
type blockRun struct{ first, n uint32 }

// putRuns returns runs of blocks to their slabs' rings in the given shard.
// The caller wipes blocks that a holder used (see wipe) before, and after
// the push releases their reservations with a.sema.Release, so that a
// writer granted those reservations finds the blocks.
//
// Each run becomes one ring entry per 1<<runBits blocks, and the part of a
// run that crosses into the next slab goes to that slab's ring; the
// entries for one slab go to its ring with one CAS.
func (a *allocator) putRuns(runs []blockRun, shard int) {
	var es [16]uint32
	m := 0
	var sl *slabLists // the slab of es; its blocks are the len(sl.links) indices from sl.first on
	for _, r := range runs {
		for r.n > 0 {
			if sl == nil || r.first-sl.first >= uint32(len(sl.links)) {
				if m > 0 {
					pushAll(&sl.rings[shard], es[:m])
					m = 0
				}
				sl = a.slabs[a.arena.SlabOf(r.first)].Load()
			}
			n := min(r.n, 1<<sl.runBits, sl.first+uint32(len(sl.links))-r.first)
			es[m] = sl.entry(r.first, int(n))
			if m++; m == len(es) {
				pushAll(&sl.rings[shard], es[:m])
				m = 0
			}
			r.first += n
			r.n -= n
		}
	}
	if m > 0 {
		pushAll(&sl.rings[shard], es[:m])
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
		pushAll(&sl.rings[s], rest[:])
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
func (a *allocator) freeBlock(i uint32, shard int) {
	a.count(-1)
	a.wipe(blockRun{first: i, n: 1})
	if !a.putHot(i, shard) {
		a.putBlock(i, shard)
	}
}

// wipe clears the blocks of r if the pool zeroes on free.
func (a *allocator) wipe(r blockRun) {
	if a.zero {
		for i := range r.n {
			clear(a.arena.Block(r.first + i))
		}
	}
}

// ringBlock gives one block, which the caller has wiped if it was written
// (see wipe), back to its ring in the given shard, and its reservation to
// the semaphore.
func (a *allocator) ringBlock(i uint32, shard int) {
	a.count(-1)
	a.putBlock(i, shard)
}

// putBlock is ringBlock for a block no holder counts: a hot one.
func (a *allocator) putBlock(i uint32, shard int) {
	one := [1]blockRun{{first: i, n: 1}}
	a.putRuns(one[:], shard)
	a.sema.Release(1, shard)
}

// freer gives blocks back to the pool in batches: runs of consecutive
// blocks, one ring entry per run (see putRuns), and one semaphore release
// for the lot; and, for the blocks of a budget's Bytes or pipe, their
// reservations at the budget's levels. Use it on the stack: add each block
// or run, then call done once.
type freer struct {
	a      *allocator
	budget *Budget // where the blocks' holder also gives them back; nil for the pool alone
	shard  int
	hot    bool // a lone block may become the shard's hot block (see hot blocks below)
	runs   [16]blockRun
	n      int // runs queued
	total  int // blocks added
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
		f.add(l.pop(f.a.link(l.head)))
	}
}

// flush pushes the runs queued so far.
func (f *freer) flush() {
	for _, r := range f.runs[:f.n] {
		f.a.wipe(r)
	}
	f.a.putRuns(f.runs[:f.n], f.shard)
	f.n = 0
}

// done returns what is left and releases the reservations of every block
// added. With hot set, a lone block goes back as freeBlock gives it: to
// the shard's hot slot if that is empty.
//
// The budget's levels get their reservations back after the pool has the
// blocks: a writer that a budget level then grants finds them there.
func (f *freer) done() {
	if f.hot && f.total == 1 { // runs[0] is the block: addRun flushes only a full runs
		f.a.freeBlock(f.runs[0].first, f.shard)
	} else {
		if f.n > 0 {
			f.flush()
		}
		if f.total > 0 {
			f.a.count(-f.total)
			f.a.sema.Release(uint64(f.total), f.shard)
		}
	}
	if f.budget != nil {
		f.budget.release(f.total)
	}
}

// Hot blocks: each shard's hot block: the last single block freed into
// the shard, set aside from the rings together with its reservation, so
// that the next write of one block on that shard takes it back with one
// atomic exchange.
//
// Why: a Bytes that holds one block at a time, as one that carries small
// messages does, would otherwise free each block with three atomics (the
// ring's claim and publish, the semaphore's release) and take the next one
// with two more (the semaphore's CAS, the ring's pop), and the rings, FIFO,
// would hand it the block freed longest ago, whose cache lines are cold.
// The hot block is the one just freed, still in the core's cache.
//
// Invariants:
//   - A block is in at most one place: a ring, a hot slot, a stripe (see
//     stripes), or a holder.
//   - A hot block carries its reservation: it is counted as held in the
//     semaphore, not as available. takeHot hands both to the taker, so a
//     taker never calls TryAcquire for it, and drainHot gives both back.
//     So the semaphore never promises a block that sits in a hot slot,
//     and the reservation invariant (see allocator) holds.
//   - A hot block never keeps a queued writer waiting. The semaphore's
//     queue is not empty only while queued is set (see park.Sema), and
//     putHot and enqueue order their atomics so that one of them always
//     sees the other: putHot stores the block and then loads queued;
//     enqueue stores queued (inside Enqueue) and then swaps every hot slot
//     empty. All are sequentially consistent, so if putHot's load misses
//     queued, its store came first and the swap finds the block; if it
//     sees queued, it drains the slot itself. Either way the block goes
//     back through Release, which grants it to the queue.
//   - While writers are queued no newcomer takes a hot block (takeHot
//     checks queued, as TryAcquire does), so none can pass them. reuseHot
//     does not check: its caller holds reservations already.
//
// No ABA: a slot changes only by a CAS that expects it empty (putHot) and
// by swaps that take whatever it holds (takeHot, drainHot, reuseHot); no
// step acts on a value it read earlier, so a slot that was emptied and
// refilled in between cannot mislead it.

// takeHot takes the hot block of shard s, with its reservation, if there is
// one and no writer is queued.
func (a *allocator) takeHot(s int) (uint32, bool) {
	h := &a.local[s].hot
	if h.Load() == 0 || a.sema.Queued() { // the plain loads keep an empty slot's line shared
		return noBlock, false
	}
	v := h.Swap(0)
	return v - 1, v != 0
}

// putHot offers block i, with its reservation, as the hot block of shard s,
// and reports whether the slot took it; if not, the caller still holds
// both. The caller has wiped the block (see BytesPool.wipe).
func (a *allocator) putHot(i uint32, s int) bool {
	h := &a.local[s].hot
	if h.Load() != 0 || !h.CompareAndSwap(0, i+1) {
		return false
	}
	if a.sema.Queued() {
		a.drainHot(s)
	}
	return true
}

// drainHot gives the hot block of shard s, if any, back to the shard's ring
// and its reservation to the semaphore.
func (a *allocator) drainHot(s int) {
	if v := a.local[s].hot.Swap(0); v != 0 {
		a.putBlock(v-1, s)
	}
}

// reuseHot fills dst with hot blocks and returns how many it stored: the
// hot block of shard home, or, with others set, those of the other shards.
// It is for getBlocks, once the rings are empty: the caller, whose home
// shard is home, holds reservations for dst already, so the hot blocks'
// own go back to the semaphore.
func (a *allocator) reuseHot(dst []uint32, home int, others bool) int {
	first, last := home, home // the shards to look at, in the order of i
	if others {
		first, last = home+1, home+a.shardMask
	}
	n := 0
	for i := first; i <= last && n < len(dst); i++ {
		h := &a.local[i&a.shardMask].hot
		if h.Load() == 0 {
			continue
		}
		if v := h.Swap(0); v != 0 {
			dst[n] = v - 1
			n++
		}
	}
	if n > 0 {
		a.sema.Release(uint64(n), home)
	}
	return n
}

// hotBlocks counts the hot blocks: a snapshot, for Stats.
func (a *allocator) hotBlocks() int {
	n := 0
	for s := range a.shardMask + 1 {
		if a.local[s].hot.Load() != 0 {
			n++
		}
	}
	return n
}

// tryGetBlock takes one free block for a holder whose home shard is s, if
// one can be had without waiting: the shard's hot block, or a reservation
// and a block from the rings.
func (a *allocator) tryGetBlock(s int) (uint32, bool) {
	if i, ok := a.takeHot(s); ok {
		a.count(1)
		return i, true
	}
	if !a.sema.TryAcquire(1, s) {
		return noBlock, false
	}
	a.count(1)
	return a.getBlock(s), true
}

// Stripes: each shard's stripe: blocks carved from the arena for
// the shard, stripeBlocks at a time, that no one has used yet.
//
// Why: the links of neighbouring blocks share cache lines (a link is 12
// bytes; see slabLists), and the holder of a block writes its link on
// every write that adds the block to a chain. Carved one at a time for
// whichever core asked, a fresh pool's blocks would alternate between the
// cores, and two cores that each reuse one block (small messages, with
// the hot blocks) would write the same line on every message,
// which roughly doubles the cost of a small message (bench/RESULTS.md has
// the figures). A stripe keeps a shard's fresh blocks together, apart from the other
// shards' blocks: 32 links are 384 bytes, three whole 128-byte line pairs.
// Freed blocks then mostly stay in their shard (see allocator.slabs), so
// the shards keep to their own stretches of the arena.
//
// Invariants:
//   - A stripe's blocks are carved and free. They are counted as
//     available in the semaphore, as uncarved blocks are, so the
//     reservation invariant (see allocator) holds.
//   - A block is in a stripe at most once in its life: a stripe is filled
//     only with blocks just carved (CarveN, TryCarveN), and blocks leave
//     it only to be used, and are freed to the rings and hot slots, never
//     to a stripe.
//   - Stats counts a stripe's blocks as not yet allocated: no one has
//     touched them. The rest of a stripe that keepStripe sends to a ring
//     does count, so BlocksAllocated can pass the blocks handed out, by
//     less than a stripe each time two goroutines of a shard carve at once.
//
// No ABA: takeStripe moves a stripe's start forward with a CAS against the
// value it loaded. That value can come back only if the stripe's blocks
// were taken and the same blocks put in a stripe again, which the second
// invariant rules out. keepStripe's CAS expects an empty stripe, and any
// empty stripe is as good as another.

// stripeBlocks is the length of the stripes that getBlocks carves.
const stripeBlocks = 32

// packStripe packs the blocks [lo, hi) as lo<<32 | hi; lo == hi is
// empty. Block indices are below slab.MaxBlocks, so hi fits in 32 bits.
func packStripe(lo, hi uint32) uint64 { return uint64(lo)<<32 | uint64(hi) }

// unpackStripe unpacks a stripe.
func unpackStripe(v uint64) (lo, hi uint32) { return uint32(v >> 32), uint32(v) }

// takeStripe fills dst with blocks from shard s's stripe, as far as it
// goes, and returns how many it stored: consecutive blocks, so that a
// write copies across them at once.
func (a *allocator) takeStripe(dst []uint32, s int) int {
	st := &a.local[s].stripe
	for len(dst) > 0 {
		v := st.Load()
		lo, hi := unpackStripe(v)
		if lo == hi {
			break
		}
		k := min(uint32(len(dst)), hi-lo)
		if st.CompareAndSwap(v, packStripe(lo+k, hi)) {
			for j := range k {
				dst[j] = lo + j
			}
			return int(k)
		}
	}
	return 0
}

// carve fills dst with blocks for a holder whose home shard is s: from
// the shard's stripe, then from fresh stripes carved from the arena, whose
// rest stays in the shard's stripe. With grow set, an unlimited arena may
// allocate a slab for them; without, they come from the slabs it has. It
// returns how many it stored, fewer than len(dst) only when the arena (or
// without grow, its slabs so far) is used up.
func (a *allocator) carve(dst []uint32, s int, grow bool) int {
	n := a.takeStripe(dst, s)
	for n < len(dst) {
		want := max(stripeBlocks, len(dst)-n)
		first, k, ok := a.arena.TryCarveN(want)
		if !ok && grow && a.total > 0 {
			// Publish the limited arena's next slab. An unlimited
			// arena's are published by grow, before their blocks are
			// reserved, so its reserved blocks are all in slabs
			// published already.
			var err error
			first, k, err = a.arena.CarveN(want)
			ok = err == nil
		}
		if !ok {
			break
		}
		for sk, last := a.arena.SlabOf(first), a.arena.SlabOf(first+uint32(k-1)); sk <= last; sk++ {
			if a.slabs[sk].Load() == nil {
				a.addSlab(sk)
			}
		}
		use := min(k, len(dst)-n)
		for j := range use {
			dst[n+j] = first + uint32(j)
		}
		n += use
		if use < k {
			a.keepStripe(first+uint32(use), first+uint32(k), s)
		}
	}
	return n
}

// keepStripe makes the fresh blocks [lo, hi) shard s's stripe if the
// shard's stripe is empty. If it is not, another goroutine of the shard
// carved one meanwhile, and the blocks go to the shard's ring instead:
// free either way, with no reservation to give back.
func (a *allocator) keepStripe(lo, hi uint32, s int) {
	st := &a.local[s].stripe
	v := st.Load()
	if from, to := unpackStripe(v); from == to && st.CompareAndSwap(v, packStripe(lo, hi)) {
		return
	}
	run := [1]blockRun{{first: lo, n: hi - lo}}
	a.putRuns(run[:], s)
}

// stripedBlocks counts the blocks in the stripes: a snapshot, for Stats.
func (a *allocator) stripedBlocks() int {
	n := 0
	for s := range a.shardMask + 1 {
		lo, hi := unpackStripe(a.local[s].stripe.Load())
		n += int(hi - lo)
	}
	return n
}
