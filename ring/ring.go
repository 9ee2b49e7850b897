// Package ring implements a bounded multi-producer multi-consumer FIFO
// queue of uint32 values, used by the pool as its free list of block
// indices.
//
// The queue is Dmitry Vyukov's bounded MPMC queue: every slot carries a
// sequence number that says whose turn it is, so a Push or Pop costs one
// CAS on a shared position and one store on the slot, with no mutex and no
// channel. Unlike a Treiber stack of indices it needs no ABA tag, and unlike
// a queue that packs head and tail into one word it lets producers and
// consumers contend on different cache lines.
//
// Push and Pop never block: they report full or empty instead. The queue is
// not linearizable at its edges. A Pop can report empty while a Push that
// claimed an earlier position has not yet published its value, even if a
// later Push has already returned; symmetrically, a Push can report full
// while a Pop that claimed the slot it needs has not yet finished. A caller
// that knows a value must be present (or that there must be room) retries.
package ring

import (
	"fmt"
	"math/bits"

	"go.uber.org/atomic"
)

// cacheLineSize is the unit of padding between the hot fields of a Ring:
// a store to head or tail invalidates the whole cache line in every other
// core, so fields written by different goroutines must not share one.
// 64 bytes is the line size on x86-64. (arm64 and ppc64 would want 128,
// and x86's adjacent-line prefetcher works in 128-byte pairs too; 64 is
// what the design card asks for.)
const cacheLineSize = 64

// A Ring is a bounded MPMC FIFO queue of uint32 values.
// A Ring must be created with New; the zero value is not usable.
// A Ring must not be copied after first use.
//
// Each padding field is a whole cache line rather than the remainder of
// one, because a heap object is only guaranteed 8-byte alignment: with a
// full line between them, two fields can never share a line wherever the
// object starts. head is the first word after the leading pad, so it is
// also 64-bit aligned on 32-bit platforms, as 64-bit atomics require there;
// tail follows at a multiple of 8 bytes.
type Ring struct {
	_ [cacheLineSize]byte

	// head is the next position to pop. Written only by Pop's CAS.
	head atomic.Uint64
	_    [cacheLineSize]byte

	// tail is the next position to push. Written only by Push's CAS.
	tail atomic.Uint64
	_    [cacheLineSize]byte

	// mask and slots are written by New and only read afterwards;
	// the padding above keeps them off the lines that head and tail
	// invalidate. len(slots) == mask+1 is a power of two.
	mask  uint64
	slots []slot
}

// A slot holds one value and the sequence number that hands it between
// producers and consumers.
type slot struct {
	// seq says whose turn it is at the slot, for the position pos that
	// the slot serves in the current lap:
	//	2*pos    free: the Push of pos may claim it;
	//	2*pos+1  published: the Pop of pos may claim it.
	// The Pop of pos stores 2*(pos+len(slots)), freeing the slot for
	// the position it serves in the next lap.
	seq atomic.Uint64

	// val is a plain field: it is written only by the Push that claimed
	// the slot, before it stores seq, and read only by the Pop that
	// observed that store, so the seq store/load pair orders every access
	// (and the race detector sees the same happens-before edge).
	val uint32

	// The explicit pad makes a slot 16 bytes on every platform. On 64-bit
	// platforms the compiler pads to 16 anyway; on 32-bit platforms it
	// would otherwise be 12, and seq in every odd element would lose the
	// 8-byte alignment that 64-bit atomics need there.
	_ uint32
}

// New returns an empty Ring that holds up to capacity values, rounded up to
// a power of two. It panics unless 1 <= capacity <= 1<<31.
func New(capacity int) *Ring {
	return newAt(capacity, 0)
}

// newAt is New with head and tail starting at position start instead of 0,
// so tests can run the Ring across the wraparound of its counters.
func newAt(capacity int, start uint64) *Ring {
	// The int64 conversion keeps the bound check compiling where int is
	// 32 bits.
	if capacity < 1 || int64(capacity) > 1<<31 {
		panic(fmt.Sprintf("ring: capacity must be between 1 and 1<<31, got %d", capacity))
	}
	n := uint64(1) << bits.Len64(uint64(capacity-1))
	r := &Ring{
		mask:  n - 1,
		slots: make([]slot, n),
	}
	// Positions start, ..., start+n-1 are all free in the first lap.
	for i := uint64(0); i < n; i++ {
		pos := start + i
		r.slots[pos&r.mask].seq.Store(2 * pos)
	}
	r.head.Store(start)
	r.tail.Store(start)
	return r
}

// The algorithm.
//
// Positions are 64-bit counters; position pos lives in slots[pos&mask], so
// len(slots) consecutive positions use every slot once (a lap). Push claims
// the position tail by CAS when the slot's seq says it is free for pos
// (seq == 2*pos), writes val, and publishes seq = 2*pos+1. Pop claims the
// position head by CAS when the slot's seq says pos is published
// (seq == 2*pos+1), reads val, and frees the slot for the next lap with
// seq = 2*(pos+len(slots)).
//
// Vyukov's original stores pos, pos+1 and pos+len(slots) instead. With a
// single slot, "pos published" (pos+1) is then the same value as "free for
// pos+1" (pos+len(slots)), so a Push into a full ring of one succeeds and
// overwrites the value. Doubling keeps free values even and published
// values odd, so the two states never collide, at the cost of a shift.
//
// Memory ordering. All sync/atomic operations (which go.uber.org/atomic
// wraps) are sequentially consistent, and an atomic load that observes an
// atomic store synchronizes with it. A Pop that loads seq == 2*pos+1 has
// observed the store made by the Push that claimed pos, which came after
// that Push wrote val, so the Pop reads the new val. A Push that loads
// seq == 2*pos has observed the store made by the Pop of pos-len(slots), which
// came after that Pop read val, so the Push's write cannot race with that
// read. (In the first lap, seq == 2*pos was stored by New before the Ring was
// shared.) The CAS on head or tail admits one claimant per position; seq
// hands the slot to one side at a time.
//
// ABA. A CAS from a stale position is harmless: head and tail only ever
// increase by one, so a CAS from pos succeeds only while the counter is
// still pos, that is, while nobody else has claimed pos, and pos comes back
// only after 2^64 further claims (centuries at a nanosecond each). seq tells
// laps apart, because it records the position, not just the slot index.
// The wrap of the counters (and of 2*pos, once pos passes 2^63) is harmless:
// len(slots) divides 2^64, so pos&mask stays consistent across the wrap, and
// every comparison is a signed difference, int64(seq-2*pos), which is
// correct as long as the positions compared are less than 2^62 apart: they
// differ by about a lap, or by however many operations ran while the caller
// held a stale pos. An unsigned comparison would see every slot that is
// behind as far ahead, so "full" and "empty" would never be reported.
//
// Progress. Neither call waits for another goroutine: the loop retries only
// after a failed CAS or on finding the slot already claimed, so some other
// call made progress. But a goroutine stopped between its CAS and its seq
// store holds its slot, and until it resumes no call gets past that slot:
// Pops that reach it report empty, and Pushes that come round to it a lap
// later report full. Strictly, this makes the algorithm not lock-free; calls
// still never block, they report and let the caller decide whether to retry.
// This is the non-linearizable behaviour described in the package doc.

// Push adds v at the tail of the queue. It reports false, without waiting,
// if the queue is full.
func (r *Ring) Push(v uint32) bool {
	for {
		pos := r.tail.Load()
		s := &r.slots[pos&r.mask]
		d := int64(s.seq.Load() - 2*pos)
		if d == 0 {
			if r.tail.CompareAndSwap(pos, pos+1) {
				s.val = v
				s.seq.Store(2*pos + 1)
				return true
			}
		} else if d < 0 {
			// Position pos-len(slots) has not been popped,
			// or its Pop has not finished: full.
			return false
		}
		// d > 0, or the CAS failed: another Push claimed pos.
	}
}

// Pop removes and returns the value at the head of the queue. It reports
// false, without waiting, if the queue is empty.
func (r *Ring) Pop() (uint32, bool) {
	for {
		pos := r.head.Load()
		s := &r.slots[pos&r.mask]
		d := int64(s.seq.Load() - (2*pos + 1))
		if d == 0 {
			if r.head.CompareAndSwap(pos, pos+1) {
				v := s.val
				s.seq.Store(2 * (pos + r.mask + 1)) // 2*(pos+len(slots))
				return v, true
			}
		} else if d < 0 {
			// Position pos has not been pushed, or its Push
			// has not finished: empty.
			return 0, false
		}
		// d > 0, or the CAS failed: another Pop claimed pos.
	}
}

// Cap returns the number of values the Ring can hold: the capacity passed
// to New, rounded up to a power of two.
func (r *Ring) Cap() int {
	return len(r.slots)
}

// Len returns the number of values in the Ring. It is exact when no Push
// or Pop is in flight; under concurrency it is a snapshot that may already
// be stale, but it is always in [0, Cap()].
func (r *Ring) Len() int {
	// head is loaded first. Both counters only increase, and head <= tail
	// at every instant (a Pop claims pos only once pos is published, so
	// after tail has passed it); hence the later tail is at least the
	// earlier head and t-h is never "negative". At every instant also
	// tail-head <= Cap() (a Push claims pos only once pos-Cap() has been
	// popped), but not across two loads: if a lap of Pushes and Pops
	// completes between them, t-h exceeds Cap(). That is an artifact of
	// the snapshot, not lost or extra values, so clamp it.
	h := r.head.Load()
	t := r.tail.Load()
	if n := t - h; n < uint64(len(r.slots)) {
		return int(n)
	}
	return len(r.slots)
}
