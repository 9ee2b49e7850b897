package bench

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/zjj/bytespool/ring"
)

// setupBound is the reference op=bound of BenchmarkPaired: what a buffer
// workload costs with only the operations that bytespool's contract and
// design card make unavoidable, and none of bytespool's own code. It is a
// yardstick, not a buffer anyone should use: it never waits, has no error
// paths, and assumes that every chunk is read back whole.
//
// Per op it does what bytespool must do at the least:
//   - a buffer header from a sync.Pool, and back (the design card keeps
//     Bytes headers in one);
//   - a sync.Mutex Lock and Unlock around every write, every read and the
//     release (SPEC: a Bytes is safe for concurrent use);
//   - per write of one new block, one atomic swap that takes the block
//     freed last, if it is still there: a free list shared by goroutines
//     needs one read-modify-write to take a block, and this is the block
//     most likely still in the core's cache (bytespool's hot block);
//   - per other write, one CAS on a shared counter to reserve the blocks
//     it needs (the hard cap) and one PopWeighted from a lock-free ring of
//     free blocks (the design card's free list), whose slots it reads. As
//     in bytespool, an entry of the ring is a run of up to 16 consecutive
//     blocks, and the rest of a run longer than the write needs goes back;
//   - per read that empties one block, one CAS that sets it aside for the
//     swap above, if the place is empty; per other read, one PushN of the
//     blocks it empties, which publishes one entry per run in its slot,
//     and one atomic add to give back their reservations;
//   - the copies, one per run of adjacent blocks, as bytespool's are.
//
// Like bytespool's arena, it hands out blocks never used before only when
// the free list is empty, in arena order, so that a workload cycles
// through as few blocks as it holds at once.
//
// Each goroutine's ops (each call of the returned setup) get a shard of
// their own: a free list, a place for the block freed last and an equal
// share of the cap, padded apart, as if the pool had a shard for every
// core and every goroutine stayed on its core. So under b.RunParallel no
// two goroutines touch the same atomics; only carving fresh blocks is
// shared, which a steady workload does not do. That is the least a
// parallel workload can cost; bytespool's shards must also be found, and
// share blocks and cap when one runs dry.
//
// Measured against the floor or the best peer, it shows how much of a
// target the design itself uses up; bytespool against it shows what the
// library's own code adds.
func setupBound(int) func() roundTrip { return boundOp(locked) }

// setupFenced is the reference op=fenced of BenchmarkPaired: the bound with
// each call's mutex, a Lock and an Unlock (two read-modify-writes), replaced
// by one atomic add on the buffer. That is not a lock; it is what the least
// synchronization of a call costs. Each of an op's calls (a write, a read,
// the release) changes state that, in a buffer safe for concurrent use,
// other goroutines may read at the same time, so it must publish the
// change with at least one atomic store or read-modify-write, and on amd64
// Go's atomic stores are exchanges, which cost what a read-modify-write
// does. So no design that keeps SPEC's "safe for concurrent use" and the
// design card's shared free list of blocks can do better than the fenced
// bound; where it misses a target, so would any. The benchmarks use each
// buffer from one goroutine at a time, so it moves the right bytes there.
func setupFenced(int) func() roundTrip { return boundOp(fenced) }

// setupUnsynced is the reference op=unsynced of BenchmarkPaired: the bound
// with none of its synchronization: a buffer of its own, no mutex, no cap,
// and a plain FIFO slice for the free list behind a plain variable for the
// block freed last, so only one goroutine may use it. What is left is
// the bookkeeping of a buffer made of 4 KiB blocks, so the bound against
// it is the cost of the synchronization alone.
func setupUnsynced(int) func() roundTrip { return boundOp(unsynced) }

// boundSync is how a bound synchronizes its calls (see setupBound,
// setupFenced and setupUnsynced).
type boundSync int

const (
	unsynced boundSync = iota // not at all: one goroutine only
	fenced                    // one atomic add per call, and the bound's free list and cap
	locked                    // a mutex around every call, and the free list and cap
)

// A boundBuffer is the buffer of the bounds.
type boundBuffer struct {
	mu     sync.Mutex    // locked
	fence  atomic.Uint32 // fenced
	blocks []uint32      // held, oldest first, from blocks[h] on
	h      int
	r, w   int // read and write offsets into the bytes of blocks[h:]
}

// runBits is the number of low bits of a bound's ring entry that hold the
// length of its run, less one; the rest is the run's first block.
const (
	runBits = 4
	runMask = 1<<runBits - 1
)

// A boundShard is the free list of one goroutine of the bound or the
// fenced bound (see setupBound). Its size, 128 bytes, is a size class, whose objects the
// allocator aligns to 128 bytes, so two shards never share a cache line
// or a pair of them.
type boundShard struct {
	free  *ring.Ring    // the free list
	avail atomic.Int64  // blocks that may still be handed out
	hot   atomic.Uint32 // a lone block freed last, +1; 0 = none
	_     [128 - 8 - 8 - 4]byte
}

// boundOp returns the setup of a bound that synchronizes as mode says.
func boundOp(mode boundSync) func() roundTrip {
	synced := mode != unsynced
	arena := make([]byte, poolMemory)
	var (
		shards []*boundShard // synced: one per goroutine, taken in turn by the setup
		taken  atomic.Int32  // synced: shards taken so far
		queue  []uint32      // unsynced: the free list, oldest first, from queue[qh] on
		qh     int
		hotU   uint32        // unsynced: a lone block freed last, +1; 0 = none
		carved atomic.Uint32 // blocks handed out so far for the first time
	)
	if synced {
		shards = make([]*boundShard, runtime.GOMAXPROCS(0))
		for i := range shards {
			shards[i] = &boundShard{free: ring.New(poolBlocks)}
			shards[i].avail.Store(int64(poolBlocks / len(shards)))
		}
	}
	headers := sync.Pool{New: func() any { return &boundBuffer{blocks: make([]uint32, 0, 1024)} }}
	lock := func(buf *boundBuffer) {
		switch mode {
		case locked:
			buf.mu.Lock()
		case fenced:
			buf.fence.Add(1)
		}
	}
	unlock := func(buf *boundBuffer) {
		if mode == locked {
			buf.mu.Unlock()
		}
	}
	// pushEntries puts ring entries back, each a run of blocks: the
	// first one's index <<runBits | the length-1.
	pushEntries := func(sh *boundShard, es []uint32) {
		for pushed := 0; pushed < len(es); {
			pushed += sh.free.PushN(es[pushed:])
		}
	}
	// popRuns appends up to need blocks from the ring to buf.blocks and
	// returns how many.
	popRuns := func(sh *boundShard, buf *boundBuffer, need int) int {
		var es [16]uint32
		n, items := sh.free.PopWeighted(es[:min(need, len(es))], need, runMask)
		for i, e := range es[:n] {
			first, m := e>>runBits, int(e&runMask)+1
			if i == n-1 && items > need { // split the last run
				keep := m - (items - need)
				rest := [1]uint32{(first+uint32(keep))<<runBits | uint32(m-keep-1)}
				pushEntries(sh, rest[:])
				m = keep
			}
			for t := range m {
				buf.blocks = append(buf.blocks, first+uint32(t))
			}
		}
		return min(items, need)
	}
	// pop appends need free blocks to buf.blocks, carving new ones when
	// the free list is empty.
	pop := func(sh *boundShard, buf *boundBuffer, need int) {
		if need == 1 { // the block freed last, with its reservation
			v := hotU
			if synced {
				v = sh.hot.Swap(0)
			} else {
				hotU = 0
			}
			if v != 0 {
				buf.blocks = append(buf.blocks, v-1)
				return
			}
		}
		if synced {
			for n := sh.avail.Load(); !sh.avail.CompareAndSwap(n, n-int64(need)); n = sh.avail.Load() {
			}
		}
		for need > 0 {
			var got int
			if synced {
				got = popRuns(sh, buf, need)
			} else {
				got = min(need, len(queue)-qh)
				buf.blocks = append(buf.blocks, queue[qh:qh+got]...)
				qh += got
			}
			if got == 0 {
				buf.blocks, got = append(buf.blocks, carved.Add(1)-1), 1
			}
			need -= got
		}
	}
	// push gives blocks back.
	push := func(sh *boundShard, blocks []uint32) {
		if len(blocks) == 1 { // set a lone block aside, with its reservation
			if !synced && hotU == 0 {
				hotU = blocks[0] + 1
				return
			}
			if synced && sh.hot.CompareAndSwap(0, blocks[0]+1) {
				return
			}
		}
		if !synced {
			if qh == len(queue) {
				queue, qh = queue[:0], 0
			}
			queue = append(queue, blocks...)
			return
		}
		freed := int64(len(blocks))
		var es [16]uint32
		for len(blocks) > 0 {
			m := 0
			for ; m < len(es) && len(blocks) > 0; m++ {
				n := 1
				for n < min(len(blocks), 1<<runBits) && blocks[n] == blocks[0]+uint32(n) {
					n++
				}
				es[m] = blocks[0]<<runBits | uint32(n-1)
				blocks = blocks[n:]
			}
			pushEntries(sh, es[:m])
		}
		sh.avail.Add(freed)
	}
	// span returns the bytes of held block i (counted from h) and of the
	// held blocks after it that follow it in the arena, up to offset end
	// of the held bytes.
	span := func(buf *boundBuffer, i, end int) []byte {
		first, want := buf.blocks[buf.h+i], end-i*blockSize
		run := 1
		for run*blockSize < want && buf.blocks[buf.h+i+run] == first+uint32(run) {
			run++
		}
		start := int(first) * blockSize
		return arena[start : start+min(run*blockSize, want)]
	}
	return func() roundTrip {
		own := &boundBuffer{blocks: make([]uint32, 0, 1024)}
		var sh *boundShard
		if synced {
			sh = shards[int(taken.Add(1)-1)%len(shards)]
		}
		return func(src, dst []byte, chunk int) error {
			buf := own
			if synced {
				buf = headers.Get().(*boundBuffer)
			}
			for off := 0; off < len(src); off += chunk {
				p := src[off : off+chunk]
				lock(buf)
				if need := (buf.w+len(p)+blockSize-1)/blockSize - (len(buf.blocks) - buf.h); need > 0 {
					pop(sh, buf, need)
				}
				for end := buf.w + len(p); buf.w < end; {
					i, o := buf.w/blockSize, buf.w%blockSize
					k := copy(span(buf, i, end)[o:], p)
					p = p[k:]
					buf.w += k
				}
				unlock(buf)
			}
			for off := 0; off < len(dst); off += chunk {
				p := dst[off : off+chunk]
				lock(buf)
				for len(p) > 0 {
					i, o := buf.r/blockSize, buf.r%blockSize
					k := copy(p, span(buf, i, min(buf.w, buf.r+len(p)))[o:])
					p = p[k:]
					buf.r += k
				}
				done := buf.r / blockSize // blocks read to their end
				if buf.r == buf.w {
					done = len(buf.blocks) - buf.h
				}
				if done > 0 {
					push(sh, buf.blocks[buf.h:buf.h+done])
					buf.h += done
					buf.r -= done * blockSize
					buf.w -= done * blockSize
					if buf.r == buf.w {
						buf.blocks, buf.h, buf.r, buf.w = buf.blocks[:0], 0, 0, 0
					}
				}
				unlock(buf)
			}
			lock(buf) // the release: every chunk was read, so nothing is left to free
			buf.blocks, buf.h, buf.r, buf.w = buf.blocks[:0], 0, 0, 0
			unlock(buf)
			if synced {
				headers.Put(buf)
			}
			return nil
		}
	}
}
