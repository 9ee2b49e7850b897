// Package ring implements a bounded multi-producer multi-consumer FIFO
// queue of uint32 values, used by the pool as its free list of blocks.
//
// It is a Vyukov-style bounded queue: every slot records which position it
// holds, so producers and consumers agree on a slot without a lock. Pop
// costs one CAS on the shared head and no write to the slot; Push costs one
// CAS on the shared tail and one store to the slot. PopN and PushN move a
// run of values with one CAS, and PopWeighted pops values that each stand
// for several items until they add up to what the caller needs. No mutex,
// no channel; producers and consumers contend on different cache lines.
//
// Push and Pop never block: they report full or empty instead. The queue is
// not linearizable at one edge: a Pop can report empty while a Push that
// claimed an earlier position has not yet published its value, even if a
// later Push has already returned. A caller that knows a value must be
// present retries.
package ring

import (
	"fmt"
	"math/bits"
	"unsafe"

	"go.uber.org/atomic"

	"github.com/zjj/bytespool/internal/cacheline"
)

// A Ring is a bounded MPMC FIFO queue of uint32 values.
// A Ring must be created with New, or made with Init; the zero value is
// not usable. A Ring must not be copied after first use.
//
// Each padding field is a whole cache line rather than the remainder of
// one, because a heap object is only guaranteed 8-byte alignment: with a
// full line between them, two fields can never share a line wherever the
// object starts. head is the first word after the leading pad, so it is
// also 64-bit aligned on 32-bit platforms, as 64-bit atomics require there;
// tail follows at a multiple of 8 bytes.
type Ring struct {
	_ [cacheline.Size]byte

	// head is the next position to pop. Written only by Pop's CAS.
	head atomic.Uint64
	_    [cacheline.Size]byte

	// tail is the next position to push. Written only by Push's CAS.
	tail atomic.Uint64
	// seenHead is a value of head that a Push loaded. head only grows,
	// so seenHead <= head: a Push that finds room against seenHead has
	// room. Pushes load head itself (and refresh seenHead) only when
	// seenHead says full, so pushing does not pull head's cache line
	// away from the cores that pop. It shares tail's line, which a Push
	// owns anyway.
	seenHead atomic.Uint64
	_        [cacheline.Size]byte

	// mask and slots are written by New and only read afterwards;
	// the padding above keeps them off the lines that head and tail
	// invalidate. len(slots) == mask+1 is a power of two.
	mask  uint64
	slots []slot
}

// A slot holds one value and the position it was pushed at: the word is
// tag<<32 | value, where tag is the low 32 bits of the position. One atomic
// word, so a Pop reads value and tag together and the race detector sees
// every access ordered.
type slot struct {
	word atomic.Uint64
}

// A slot is one word, so that InitIn can use a []uint64 as slots.
var _ [0]struct{} = [unsafe.Sizeof(slot{}) - 8]struct{}{}

// pack returns the slot word for value v pushed at position pos.
func pack(pos uint64, v uint32) uint64 { return uint64(uint32(pos))<<32 | uint64(v) }

// New returns an empty Ring that holds up to capacity values, rounded up to
// a power of two. It panics unless 1 <= capacity <= 1<<31.
func New(capacity int) *Ring {
	return newAt(capacity, 0)
}

// Init makes r, a zero Ring that no one uses yet, an empty Ring that
// holds up to capacity values, as New does: for Rings kept by value, in an
// array or in a larger object, which costs the garbage collector one
// object fewer per Ring than New. It panics unless 1 <= capacity <= 1<<31.
func (r *Ring) Init(capacity int) { r.initAt(capacity, 0) }

// Slots returns the number of words of memory a Ring of the given
// capacity keeps its values in: the capacity rounded up to a power of
// two. It panics unless 1 <= capacity <= 1<<31.
func Slots(capacity int) int {
	checkCapacity(capacity)
	return 1 << bits.Len64(uint64(capacity-1))
}

// InitIn is Init for a Ring that keeps its values in buf, whose length is
// the Ring's capacity: a power of two, at most 1<<31 (see Slots). buf must
// be 8-byte aligned, as a []uint64 that make returned, and any part of it
// that starts a whole number of words in, are. The Ring owns buf from then
// on: nothing else may touch it. A caller that keeps several pointer-free arrays together in
// one allocation, as a pool keeps a slab's rings and links, costs the
// garbage collector one object instead of one per array. It panics if
// len(buf) is not such a power of two.
func (r *Ring) InitIn(buf []uint64) {
	n := len(buf)
	if n < 1 || int64(n) > 1<<31 || n&(n-1) != 0 {
		panic(fmt.Sprintf("ring: InitIn: the buffer's length must be a power of two between 1 and 1<<31, got %d", n))
	}
	r.init(unsafe.Slice((*slot)(unsafe.Pointer(unsafe.SliceData(buf))), n), 0)
}

// newAt is New with head and tail starting at position start instead of 0,
// so tests can run the Ring across the wraparound of its counters.
func newAt(capacity int, start uint64) *Ring {
	r := new(Ring)
	r.initAt(capacity, start)
	return r
}

// initAt is Init with head and tail starting at position start.
func (r *Ring) initAt(capacity int, start uint64) {
	r.init(make([]slot, Slots(capacity)), start)
}

// checkCapacity panics unless 1 <= capacity <= 1<<31.
func checkCapacity(capacity int) {
	// The int64 conversion keeps the bound check compiling where int is
	// 32 bits.
	if capacity < 1 || int64(capacity) > 1<<31 {
		panic(fmt.Sprintf("ring: capacity must be between 1 and 1<<31, got %d", capacity))
	}
}

// init makes r an empty Ring over slots, whose length is a power of two,
// with head and tail at position start.
func (r *Ring) init(slots []slot, start uint64) {
	n := uint64(len(slots))
	r.mask = n - 1
	r.slots = slots
	// Each slot starts out holding the position one lap before the first
	// one it serves, which Pop reads as "not pushed yet".
	for i := uint64(0); i < n; i++ {
		pos := start + i
		r.slots[pos&r.mask].word.Store(pack(pos-n, 0))
	}
	r.head.Store(start)
	r.tail.Store(start)
	r.seenHead.Store(start)
}

// The algorithm.
//
// Positions are 64-bit counters; position pos lives in slots[pos&mask], so
// len(slots) consecutive positions use every slot once (a lap). head is the
// next position to pop and tail the next to push; head <= tail always.
//
// Push claims the position tail by CAS, but only while tail-head <
// len(slots), that is while the value pushed a lap earlier at the same slot
// (position tail-len(slots)) has been popped. Then it stores the slot word
// (tag = pos, the value). For the check it reads seenHead, a head that an
// earlier Push loaded, and loads head only when seenHead says full: head
// only grows, so seenHead <= head and the check errs only towards "full",
// which the reload then corrects. Pop loads head and the slot word; if the tag is
// head, the value was published for this position, and Pop claims it by
// CAS on head. The slot is not written on the way out: the next lap's tag
// tells the next Pop whether it has been refilled. So a Push+Pop costs three
// atomic read-modify-writes where the textbook version, which also stores a
// "free" sequence number on Pop, costs four.
//
// Memory ordering. All sync/atomic operations (which go.uber.org/atomic
// wraps) are sequentially consistent, and an atomic load that observes an
// atomic store synchronizes with it. The value travels in the same word as
// its tag, so a Pop that sees the tag sees the value. A Pop reads the word
// before its CAS on head, and a Push overwrites a slot only after loading a
// head past the position the slot held a lap earlier, that is after the CAS
// that claimed it, so no Push overwrites a value a Pop has yet to read. When
// that head comes through seenHead, the chain is one step longer and still
// ordered: the Pop's CAS, then the Push that loaded head and stored it in
// seenHead, then this Push's load of seenHead, then its store to the slot.
//
// ABA. head and tail only ever increase by one (or by n, for PopN,
// PopWeighted and PushN, which read or write every word of the n positions
// as Pop and Push do for one), so a CAS from a stale position succeeds only
// while the counter is still that position, and a 64-bit counter does not
// come back round in practice (2^64 claims). The tag is only 32 bits, but it
// is never trusted alone: a Pop acts on it only through a CAS on the 64-bit
// head. A fresh head h finds in its slot the tag h-len(slots) (not pushed
// yet) or h (pushed), and the signed difference of the two tags tells them
// apart for any len(slots) <= 2^31; a stale head that reads a later lap's
// tag sees a positive difference, or a tag that matches by wrapping, and
// then its CAS fails because head has moved on. Every comparison of
// positions is a signed difference, so the wrap of the counters themselves
// (at 2^64) is harmless: len(slots) divides 2^64, so pos&mask stays
// consistent.
//
// Progress. Neither call waits for another goroutine: the loops retry only
// after a failed CAS or a stale load, so some other call made progress. But
// a goroutine stopped between its CAS on tail and its store holds its slot,
// and until it resumes Pops that reach that position report empty. Calls
// still never block; the caller decides whether to retry.

// Push adds v at the tail of the queue. It reports false, without waiting,
// if the queue is full.
func (r *Ring) Push(v uint32) bool {
	t, k := r.claim(1)
	if k == 0 {
		return false
	}
	r.slots[t&r.mask].word.Store(pack(t, v))
	return true
}

// PushN adds as many values of vs as fit, in order, with one CAS, and
// returns how many it added.
func (r *Ring) PushN(vs []uint32) int {
	t, k := r.claim(uint64(len(vs)))
	for i, v := range vs[:k] {
		pos := t + uint64(i)
		r.slots[pos&r.mask].word.Store(pack(pos, v))
	}
	return int(k)
}

// claim reserves up to n positions at the tail, as many as are free, with
// one CAS, and returns the first of them and how many (0 when the queue is
// full or n is 0).
func (r *Ring) claim(n uint64) (t, k uint64) {
	size := uint64(len(r.slots))
	for {
		t = r.tail.Load()
		h := r.seenHead.Load()
		if t-h > size-min(n, size) {
			// seenHead says there is not room for all n (or t is
			// stale, which the reload also sorts out): look at head
			// itself.
			h = r.head.Load()
			r.seenHead.Store(h)
		}
		d := int64(t - h)
		if d < 0 {
			continue // t is stale: Pops went past it since we loaded it
		}
		k = min(n, size-uint64(d))
		if k == 0 || r.tail.CompareAndSwap(t, t+k) {
			return t, k
		}
	}
}

// Pop removes and returns the value at the head of the queue. It reports
// false, without waiting, if the queue is empty.
func (r *Ring) Pop() (uint32, bool) {
	for {
		h := r.head.Load()
		w := r.slots[h&r.mask].word.Load()
		switch d := int32(uint32(w>>32) - uint32(h)); {
		case d < 0:
			// Position h has not been pushed, or its Push has not
			// finished: empty.
			return 0, false
		case d == 0 && r.head.CompareAndSwap(h, h+1):
			return uint32(w), true
		}
		// h was stale, or another Pop claimed it.
	}
}

// PopN removes up to len(dst) values from the head of the queue with one
// CAS, stores them in dst in order, and returns how many. It stops early at
// the first position whose value is not published yet.
func (r *Ring) PopN(dst []uint32) int {
	n, _ := r.PopWeighted(dst, len(dst), 32)
	return n
}

// PopWeighted is PopN for values that each stand for several items: value v
// counts as v>>shift + 1 of them, so with shift 32 every value is one item.
// It removes values, with one CAS, until they count at least want items
// (the last one may take the count past want), dst is full, or it reaches
// a position whose value is not published yet, and returns how many values
// it stored in dst and how many items they count.
func (r *Ring) PopWeighted(dst []uint32, want int, shift uint) (n, items int) {
	for {
		h := r.head.Load()
		k, w := 0, 0
		for ; k < len(dst) && w < want; k++ {
			pos := h + uint64(k)
			word := r.slots[pos&r.mask].word.Load()
			if uint32(word>>32) != uint32(pos) {
				break
			}
			dst[k] = uint32(word)
			w += int(uint32(word)>>shift) + 1
		}
		if k == 0 {
			if word := r.slots[h&r.mask].word.Load(); int32(uint32(word>>32)-uint32(h)) > 0 {
				continue // h was stale
			}
			return 0, 0
		}
		if r.head.CompareAndSwap(h, h+uint64(k)) {
			return k, w
		}
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
