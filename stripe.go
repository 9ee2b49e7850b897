package bytespool

// This file keeps each shard's stripe: blocks carved from the arena for
// the shard, stripeBlocks at a time, that no one has used yet.
//
// Why: the links of neighbouring blocks share cache lines (a link is 12
// bytes; see slabLists), and the holder of a block writes its link on
// every write that adds the block to a chain. Carved one at a time for
// whichever core asked, a fresh pool's blocks would alternate between the
// cores, and two cores that each reuse one block (small messages, with
// the hot blocks of hot.go) would write the same line on every message,
// which roughly doubles the cost of a small message (bench/RESULTS.md has
// the figures). A stripe keeps a shard's fresh blocks together, apart from the other
// shards' blocks: 32 links are 384 bytes, three whole 128-byte line pairs.
// Freed blocks then mostly stay in their shard (see BytesPool.slabs), so
// the shards keep to their own stretches of the arena.
//
// Invariants:
//   - A stripe's blocks are carved and free. They are counted as
//     available in the semaphore, as uncarved blocks are, so getBlocks'
//     guarantee (reserved blocks are in the rings, the hot slots, the
//     stripes or still uncarved) stands.
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
func (p *BytesPool) takeStripe(dst []uint32, s int) int {
	st := &p.local[s].stripe
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
func (p *BytesPool) carve(dst []uint32, s int, grow bool) int {
	n := p.takeStripe(dst, s)
	for n < len(dst) {
		want := max(stripeBlocks, len(dst)-n)
		first, k, ok := p.arena.TryCarveN(want)
		if !ok && grow && p.total > 0 {
			// Publish the limited arena's next slab. An unlimited
			// arena's are published by grow, before their blocks are
			// reserved, so its reserved blocks are all in slabs
			// published already.
			var err error
			first, k, err = p.arena.CarveN(want)
			ok = err == nil
		}
		if !ok {
			break
		}
		for sk, last := p.arena.SlabOf(first), p.arena.SlabOf(first+uint32(k-1)); sk <= last; sk++ {
			if p.slabs[sk].Load() == nil {
				p.addSlab(sk)
			}
		}
		use := min(k, len(dst)-n)
		for j := range use {
			dst[n+j] = first + uint32(j)
		}
		n += use
		if use < k {
			p.keepStripe(first+uint32(use), first+uint32(k), s)
		}
	}
	return n
}

// keepStripe makes the fresh blocks [lo, hi) shard s's stripe if the
// shard's stripe is empty. If it is not, another goroutine of the shard
// carved one meanwhile, and the blocks go to the shard's ring instead:
// free either way, with no reservation to give back.
func (p *BytesPool) keepStripe(lo, hi uint32, s int) {
	st := &p.local[s].stripe
	v := st.Load()
	if from, to := unpackStripe(v); from == to && st.CompareAndSwap(v, packStripe(lo, hi)) {
		return
	}
	run := [1]blockRun{{first: lo, n: hi - lo}}
	p.putRuns(run[:], s)
}

// stripedBlocks counts the blocks in the stripes: a snapshot, for Stats.
func (p *BytesPool) stripedBlocks() int {
	n := 0
	for s := range p.shardMask + 1 {
		lo, hi := unpackStripe(p.local[s].stripe.Load())
		n += int(hi - lo)
	}
	return n
}
