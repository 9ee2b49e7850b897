package bytespool

// This file holds budgets: shares of a pool's memory with caps of their
// own, nested in a tree whose root is the pool. A budget is a level of
// reservation above the pool's allocator; it never touches blocks, only
// counts them.

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/atomic"

	"github.com/zjj/bytespool/internal/park"
)

// A Budget is a share of a pool's memory with a cap of its own: the Bytes
// and pipes made from it, and from the budgets nested in it, hold at most
// its cap between them, besides what the pool and every enclosing budget
// allow. It needs no closing: a budget that nothing refers to is garbage
// like any other value. All its methods are safe for concurrent use.
//
// A write into a Bytes or pipe of a budget reserves the blocks it needs at
// every level at once: in its budget, in each enclosing budget, and in the
// pool, all or wait (see Bytes.Write). It waits at each level in arrival
// order, as in the pool, and gives up at any level when its context ends,
// giving back what it had reserved at the levels below. A write that could
// never fit the smallest cap on its path (counting the blocks its Bytes
// already holds) fails at once with ErrPoolTooSmall. Freeing a block of a
// budget's Bytes or pipe gives it back at every level, waking the writers
// it satisfies at each.
//
// Why two writes cannot deadlock across levels: a write reserves at its
// own budget first, then at each enclosing budget, outermost last, and at
// the pool after them all; at no level does it hold part of a reservation
// while it is queued there (each level grants whole reservations, in
// arrival order). So a write that holds level L waits only at levels
// strictly above L on its path. A cycle of writes each waiting for blocks
// another holds would need, somewhere in it, a write that holds an
// ancestor while it waits at one of that ancestor's descendants, which the
// order forbids; and within one level, FIFO grants of whole reservations
// mean the head of the queue is served as soon as enough is given back.
// (What remains is the trap of README's "When to use it": holders that
// keep blocks across calls and then wait for more.)
type Budget struct {
	pool   *BytesPool
	parent *Budget // nil for a budget made by BytesPool.NewBudget
	total  int     // the cap in blocks; 0 = none of its own
	limit  int     // the smallest cap on the path to the pool, the pool's capacity included
	depth  int     // 1 for a budget of the pool, 2 for one nested in it, ...

	// quota counts the blocks the budget may still give, for a budget
	// with a cap; nil without one. It has one shard: a budget is not on
	// the pool-only fast path, and one count keeps its in-use exact.
	quota *park.Sema

	// inUse is the blocks reserved at this level and not given back:
	// raised after quota grants them and lowered before they go back,
	// so it never passes the cap.
	inUse atomic.Int64
}

// BudgetStats is a snapshot of a budget's counters.
type BudgetStats struct {
	BlocksTotal  int           // its cap in blocks (the pool's, 0 if unlimited, if it has none)
	BlocksInUse  int           // blocks held, or reserved by writers about to fill them, by its Bytes and pipes and those of its descendants
	BlockWaiters int           // writers queued at this budget's own cap
	Waits        uint64        // reservations that had to wait at this budget's cap, since it was made
	WaitTime     time.Duration // their total time
}

// NewBudget returns a budget of p that holds at most maxMemory bytes at
// once: a whole number of blocks, as for Config.MaxMemory. 0 means no cap
// of its own: its Bytes and pipes are bounded by the pool only, and it
// still counts what they hold (BudgetStats.BlocksInUse). It panics if
// maxMemory is negative, smaller than one block but not 0, or not a whole
// number of blocks. A cap above the pool's is allowed; the pool's then
// bounds it.
func (p *BytesPool) NewBudget(maxMemory int) *Budget {
	p.mustBeMade("NewBudget")
	return newBudget(p, nil, maxMemory)
}

// NewBudget returns a budget nested in b: what its Bytes and pipes hold
// counts against it, against b and against every budget b is nested in,
// and against the pool. maxMemory is as for BytesPool.NewBudget; the
// smallest cap on the path bounds it.
func (b *Budget) NewBudget(maxMemory int) *Budget {
	return newBudget(b.pool, b, maxMemory)
}

func newBudget(p *BytesPool, parent *Budget, maxMemory int) *Budget {
	bs := p.blockSize
	switch {
	case maxMemory < 0:
		panic(fmt.Sprintf("bytespool: NewBudget: maxMemory must not be negative, got %d", maxMemory))
	case maxMemory > 0 && maxMemory < bs:
		panic(fmt.Sprintf("bytespool: NewBudget: maxMemory %d is smaller than one block (BlockSize %d)", maxMemory, bs))
	case maxMemory%bs != 0:
		panic(fmt.Sprintf("bytespool: NewBudget: maxMemory %d is not a multiple of BlockSize %d (%d blocks would be %d bytes)", maxMemory, bs, maxMemory/bs, maxMemory/bs*bs))
	case maxMemory/bs > maxBlocks:
		panic(fmt.Sprintf("bytespool: NewBudget: maxMemory %d is more than %d blocks of %d bytes", maxMemory, maxBlocks, bs))
	}
	b := &Budget{pool: p, parent: parent, total: maxMemory / bs, limit: p.capacity, depth: 1}
	if parent != nil {
		b.limit, b.depth = parent.limit, parent.depth+1
	}
	if b.total > 0 {
		b.limit = min(b.limit, b.total)
		b.quota = new(park.Sema)
		b.quota.Init(uint64(b.total), 1)
	}
	return b
}

// NewBytes is BytesPool.NewBytes for a Bytes whose blocks count against b
// (and its ancestors, and the pool). maxLen still bounds the Bytes.
func (b *Budget) NewBytes(maxLen int) *Bytes {
	return b.pool.newBytes(maxLen, b)
}

// NewPipe is BytesPool.NewPipe for a pipe whose blocks count against b
// (and its ancestors, and the pool). maxBuffered still bounds the pipe.
func (b *Budget) NewPipe(maxBuffered int) (*PipeReader, *PipeWriter) {
	return b.pool.newPipe(maxBuffered, b)
}

// Stats returns a snapshot of b's counters.
func (b *Budget) Stats() BudgetStats {
	s := BudgetStats{BlocksTotal: b.total, BlocksInUse: int(max(0, b.inUse.Load()))}
	if b.total == 0 {
		s.BlocksTotal = b.pool.total
	}
	if b.quota != nil {
		s.BlockWaiters = b.quota.Waiting()
		s.Waits, s.WaitTime = b.quota.Waits()
	}
	return s
}

// The levels: every method below that walks from b up acts on b and each
// of its ancestors, leaf first; on a nil *Budget (pool-only code) they do
// nothing.

// tryTake reserves n blocks at level l alone, if it has them free and
// nobody is queued there.
func (l *Budget) tryTake(n int) bool {
	if l.quota != nil && !l.quota.TryAcquire(uint64(n), 0) {
		return false
	}
	l.inUse.Add(int64(n))
	return true
}

// give gives back n blocks at level l alone.
func (l *Budget) give(n int) {
	l.inUse.Sub(int64(n))
	if l.quota != nil {
		l.quota.Release(uint64(n), 0)
	}
}

// enqueue joins level l's queue for n blocks on behalf of owner; the
// caller then calls wait exactly once. Only a level with a cap has a
// queue; tryTake never fails at one without.
func (l *Budget) enqueue(n int, owner any) park.Waiter {
	l.pool.obs.budgetWaiting.Inc() // Stats.BlockWaiters counts it until wait returns
	return l.quota.Enqueue(uint64(n), owner)
}

// wait waits for what enqueue asked for at level l, in arrival order,
// until ctx ends or an abort names the owner.
func (l *Budget) wait(ctx context.Context, q park.Waiter, n int) error {
	err := l.quota.Wait(ctx, q)
	l.pool.obs.budgetWaiting.Dec()
	if err != nil {
		return err
	}
	l.inUse.Add(int64(n))
	return nil
}

// tryAcquire reserves n blocks at every level of b at once, if each has
// them free and nobody queued; otherwise it reserves nothing.
func (b *Budget) tryAcquire(n int) bool {
	for l := b; l != nil; l = l.parent {
		if !l.tryTake(n) {
			b.releaseBelow(l, n)
			return false
		}
	}
	return true
}

// release gives back n blocks at every level of b.
func (b *Budget) release(n int) { b.releaseBelow(nil, n) }

// releaseBelow gives back n blocks at the levels of b below stop (an
// ancestor of b, or nil for all of them).
func (b *Budget) releaseBelow(stop *Budget, n int) {
	if n <= 0 {
		return
	}
	for l := b; l != stop; l = l.parent {
		l.give(n)
	}
}

// abort makes every waiter of owner queued at a level of b return err.
func (b *Budget) abort(owner any, err error) { b.abortOver(owner, 0, err) }

// abortOver makes the waiters of owner queued at a level of b that asked
// for more than max blocks return err.
func (b *Budget) abortOver(owner any, max int, err error) {
	for l := b; l != nil; l = l.parent {
		if l.quota != nil {
			l.quota.AbortOver(owner, uint64(max), err)
		}
	}
}

// tryGetBlock takes one block for a holder of b whose home shard is
// shard, if one can be had at every level without waiting: the budget's
// levels first, then the pool (see allocator.tryGetBlock).
func (b *Budget) tryGetBlock(shard int) (uint32, bool) {
	if !b.tryAcquire(1) {
		return noBlock, false
	}
	blk, ok := b.pool.tryGetBlock(shard)
	if !ok {
		b.release(1)
	}
	return blk, ok
}

// tryReserve reserves n blocks at every level of b and in the pool, if
// they can be had without waiting.
func (b *Budget) tryReserve(n, shard int) bool {
	if !b.tryAcquire(n) {
		return false
	}
	if !b.pool.tryReserve(n, shard) {
		b.release(n)
		return false
	}
	return true
}

// depthOf is b's depth, 0 for nil (the pool).
func depthOf(b *Budget) int {
	if b == nil {
		return 0
	}
	return b.depth
}

// common returns the closest level that a and b share: the deepest budget
// that is both an ancestor-or-self of a and of b, or nil (the pool).
func common(a, b *Budget) *Budget {
	for a != b {
		da, db := depthOf(a), depthOf(b)
		if da >= db {
			a = a.parent
		}
		if db >= da {
			b = b.parent
		}
	}
	return a
}

// move moves the reservations of n blocks from budget from to budget to
// (either may be nil, the pool alone), if to's levels that from's path
// does not share can take them at once; it never waits. The levels the
// two share, and the pool, keep counting the blocks throughout. It
// reports whether it moved them; if not, nothing changed.
func move(from, to *Budget, n int) bool {
	c := common(from, to)
	for l := to; l != c; l = l.parent {
		if !l.tryTake(n) {
			to.releaseBelow(l, n)
			return false
		}
	}
	from.releaseBelow(c, n)
	return true
}
