package bytespool

import "github.com/zjj/bytespool/internal/park"

// This file keeps each shard's hot block: the last single block freed into
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
//     stripe.go), or a holder.
//   - A hot block carries its reservation: it is counted as held in the
//     semaphore, not as available. takeHot hands both to the taker, so a
//     taker never calls TryAcquire for it, and drainHot gives both back.
//     So the semaphore never promises a block that sits in a hot slot,
//     and getBlocks' guarantee (reserved blocks are in the rings, the
//     stripes or still uncarved) stands.
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
func (p *BytesPool) takeHot(s int) (uint32, bool) {
	h := &p.local[s].hot
	if h.Load() == 0 || p.sema.Queued() { // the plain loads keep an empty slot's line shared
		return noBlock, false
	}
	v := h.Swap(0)
	return v - 1, v != 0
}

// putHot offers block i, with its reservation, as the hot block of shard s,
// and reports whether the slot took it; if not, the caller still holds
// both. The caller has wiped the block (see BytesPool.wipe).
func (p *BytesPool) putHot(i uint32, s int) bool {
	h := &p.local[s].hot
	if h.Load() != 0 || !h.CompareAndSwap(0, i+1) {
		return false
	}
	if p.sema.Queued() {
		p.drainHot(s)
	}
	return true
}

// drainHot gives the hot block of shard s, if any, back to the shard's ring
// and its reservation to the semaphore.
func (p *BytesPool) drainHot(s int) {
	if v := p.local[s].hot.Swap(0); v != 0 {
		p.ringBlock(v-1, s)
	}
}

// reuseHot fills dst with hot blocks and returns how many it stored: the
// hot block of shard home, or, with others set, those of the other shards.
// It is for getBlocks, once the rings are empty: the caller, whose home
// shard is home, holds reservations for dst already, so the hot blocks'
// own go back to the semaphore.
func (p *BytesPool) reuseHot(dst []uint32, home int, others bool) int {
	first, last := home, home // the shards to look at, in the order of i
	if others {
		first, last = home+1, home+p.shardMask
	}
	n := 0
	for i := first; i <= last && n < len(dst); i++ {
		h := &p.local[i&p.shardMask].hot
		if h.Load() == 0 {
			continue
		}
		if v := h.Swap(0); v != 0 {
			dst[n] = v - 1
			n++
		}
	}
	if n > 0 {
		p.sema.Release(uint64(n), home)
	}
	return n
}

// hotBlocks counts the hot blocks: a snapshot, for Stats.
func (p *BytesPool) hotBlocks() int {
	n := 0
	for s := range p.shardMask + 1 {
		if p.local[s].hot.Load() != 0 {
			n++
		}
	}
	return n
}

// enqueue joins the pool's queue for need blocks, as sema.Enqueue, and then
// empties every hot slot into the semaphore, so that the queue gets those
// blocks too (see the invariants above).
func (p *BytesPool) enqueue(need int, owner any) park.Waiter {
	q := p.sema.Enqueue(uint64(need), owner)
	for s := range p.shardMask + 1 {
		p.drainHot(s)
	}
	return q
}

// tryGetBlock takes one free block for a holder whose home shard is s, if
// one can be had without waiting: the shard's hot block, or a reservation
// and a block from the rings.
func (p *BytesPool) tryGetBlock(s int) (uint32, bool) {
	if i, ok := p.takeHot(s); ok {
		return i, true
	}
	if !p.sema.TryAcquire(1, s) {
		return noBlock, false
	}
	return p.getBlock(s), true
}
