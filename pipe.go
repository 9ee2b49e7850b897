package bytespool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"go.uber.org/atomic"

	"github.com/zjj/bytespool/internal/cacheline"

	"github.com/zjj/bytespool/internal/park"
)

// This file holds the pipe: an io.Pipe buffered in pool blocks, through
// which the writer and the reader pass bytes without a lock between them.

// A pipe is a byte stream in pool blocks. Stream position x lives in block
// x/bs, at offset x%bs, and the block of stream block k is slots[k&mask]:
// the writer appends at position wpos and publishes it in written; the
// reader consumes from rpos and publishes it in read. Blocks go back to the
// pool as the reader passes their end.
//
// Writers take turns (wturn), as do readers (rturn), so each side has one
// goroutine at a time in the stream, and the two sides share nothing but
// atomics: a writer never waits for a reader to release a lock, nor a
// reader for a writer. Each side may hold its turn while it waits (for
// room, for blocks, for data, for its io.Reader or io.Writer); the turn is
// a lock that a waiter can give up on, so contexts are honoured.
//
// The handoff. written packs the write position with two flags:
// written = wpos<<posShift | wclosed | tailFree.
//   - The writer fills bytes beyond wpos, which no reader looks at, then
//     publishes the new position with a CAS. Block contents and slots
//     entries are written before the CAS and read after a load of written
//     that sees it; all sync/atomic operations are sequentially consistent,
//     so the reader sees them.
//   - The reader reads bytes below the position it loaded, then publishes
//     read. The writer reuses a slots entry only once read says that the
//     reader has passed the block the entry held: slots has room for
//     every block from the reader's to the writer's (see NewPipe), and an
//     unbounded pipe grows it.
//   - A block is freed by the side that finishes with it. A block that
//     the reader reads to its end is the reader's: the writer has passed
//     it. The block at wpos when wpos is mid-block (the tail) is shared:
//     the writer will fill the rest of it, and the reader, when it has
//     read everything, must give it back so that a drained pipe holds no
//     block. tailFree decides: the writer publishes a mid-block position
//     with tailFree set, and whoever clears it with a CAS owns the tail.
//     The writer clears it to write on into the tail. The reader clears
//     it, with rpos == wpos, to free the tail, and in the same CAS moves
//     the write position on to the next block boundary, as does its own
//     position (dropTail): the rest of the tail is never written. The
//     writer, finding the flag gone, takes up the moved position and
//     starts a fresh block there.
//   - The bound. The writer counts as unread everything from the last
//     read position it loaded to its own, and a reader frees the blocks
//     it is done with, the dropped tail included, before it publishes its
//     position. So a writer never takes blocks for more than maxBuffered
//     bytes past a read position whose blocks the pool may still count as
//     the pipe's: the pipe holds at most blocksFor(maxBuffered)+1 blocks,
//     even for the instant a dropped tail is on its way back.
//   - ABA on written: the position only grows, except that a writer that
//     claims the tail and then writes nothing publishes the same word
//     again. That is harmless: while the writer holds the tail it does not
//     touch slots, so a reader whose CAS succeeds on the old word frees the
//     block that the word named.
//   - wclosed is set by CloseWithError. Once it is set the writer's CAS
//     fails, so nothing is published after the reader may have seen the
//     end of the stream.
//
// Closing the reader frees every block of the pipe, which needs both sides
// out of the stream: it sets rclosed, wakes every waiter, and the last
// party to leave frees the blocks (reclaim).
type pipe struct {
	// Set by NewPipe and then only read (slots changes only when an
	// unbounded pipe grows), or written once, by the closes. Both sides
	// read these on every call, so nothing that either side writes on
	// every call shares their cache line.
	pool   *BytesPool
	budget *Budget                  // the budget its blocks count against; nil for a pipe of the pool alone
	shard  int                      // the writer's shard in the pool: it reserves blocks there
	rshard int                      // the reader's shard: the reader frees blocks there, and the writer takes them from there first
	bs     uint64                   // the pool's block size
	max    uint64                   // maxBuffered; 0 = bounded by the pool only
	slots  atomic.Pointer[[]uint32] // the block of stream block k is (*slots)[k&(len-1)]

	closeMu sync.Mutex // serialises the closes; rerr and werr are written under it
	rclosed atomic.Bool
	freed   atomic.Bool
	rerr    error // set before rclosed: io.ErrClosedPipe or the reader's error
	werr    error // set before wclosed: io.EOF or the writer's error

	slots0 []uint32 // the first slots array

	made      []uintptr   // the stack of NewPipe's caller, in Debug mode only
	abandoned atomic.Bool // set by abandon if the reader was not closed: reclaim reports the leak

	_ [cacheline.Size]byte

	// The writer's side, guarded by wturn.
	wturn    turn
	wpos     uint64          // the write position: written>>posShift
	seenRead uint64          // a value of read: the reader is at least this far
	reserved int             // blocks reserved in the pool and not yet taken
	probe    [probeSize]byte // ReadFrom's small buffer (see PipeWriter.ReadFrom)

	_       [cacheline.Size]byte
	written atomic.Uint64 // wpos<<posShift | wclosed | tailFree
	_       [cacheline.Size]byte

	// The reader's side, guarded by rturn.
	rturn   turn
	rpos    uint64         // the read position
	scratch writeToScratch // WriteTo's buffers

	_    [cacheline.Size]byte
	read atomic.Uint64 // rpos, published for the writer
	_    [cacheline.Size]byte

	// Each side loads the other's Event on every call; the words are
	// written only when somebody waits.
	data  park.Event // woken by the writer after it publishes, and by closes
	space park.Event // woken by the reader after it publishes, and by closes
}

// Flags of pipe.written, below the write position.
const (
	tailFree = 1 << 0 // wpos is mid-block and nobody writes its block: whoever clears this owns it
	wclosed  = 1 << 1 // the writer closed: written is final
	posShift = 2
)

// PipeReader is the read half of a pipe made by BytesPool.NewPipe.
type PipeReader struct{ p *pipe }

// PipeWriter is the write half of a pipe made by BytesPool.NewPipe.
type PipeWriter struct{ p *pipe }

var (
	_ io.ReadCloser   = (*PipeReader)(nil)
	_ io.WriterTo     = (*PipeReader)(nil)
	_ io.WriteCloser  = (*PipeWriter)(nil)
	_ io.ReaderFrom   = (*PipeWriter)(nil)
	_ io.StringWriter = (*PipeWriter)(nil)
)

// NewPipe returns a synchronous in-memory pipe, like io.Pipe, that buffers
// up to maxBuffered unread bytes in blocks of p; 0 means bounded by the pool
// only. It panics if maxBuffered is negative.
//
// A Write returns as soon as its bytes are buffered; it waits while
// maxBuffered bytes are unread (backpressure) or while the pool has no free
// block, and a Write larger than maxBuffered goes through in pieces as the
// reader makes room. A Read waits until there is data, and after the writer
// closes it drains what is buffered before it returns io.EOF (or the
// writer's error). Closing the reader returns every block the pipe holds.
//
// Memory: a pipe holds at most ceil(maxBuffered/BlockSize)+1 blocks, since
// the buffered bytes may start and end mid-block; bytes a WriteTo is writing
// out count as buffered until the destination has taken them.
//
// Each end may be used by several goroutines at once. Writes take turns,
// each buffering all its bytes before the next starts (a Write larger than
// maxBuffered is the exception: it holds its turn while it waits for room,
// so its pieces are not interleaved with other Writes either); Reads take
// turns likewise. A writer and a reader never wait for each other except
// for data or room. A pipe whose two ends are both dropped without Close
// gives its blocks back once the garbage collector finds both unreachable.
func (p *BytesPool) NewPipe(maxBuffered int) (*PipeReader, *PipeWriter) {
	p.mustBeMade("NewPipe")
	return p.newPipe(maxBuffered, nil)
}

// newPipe is NewPipe for a pipe of budget bg (nil: of the pool alone),
// called by NewPipe or Budget.NewPipe.
func (p *BytesPool) newPipe(maxBuffered int, bg *Budget) (*PipeReader, *PipeWriter) {
	if maxBuffered < 0 {
		panic(fmt.Sprintf("bytespool: NewPipe: maxBuffered must not be negative, got %d", maxBuffered))
	}
	pp := &pipe{pool: p, budget: bg, bs: uint64(p.blockSize), max: uint64(maxBuffered)}
	pp.shard, pp.rshard = p.pipeShards()
	// A bounded pipe spans at most ceil(max/bs)+1 blocks from the
	// reader's to the writer's (the bytes may start and end mid-block),
	// and no pipe spans more than capacity+1, so that many slots, rounded
	// up to a power of two, never wrap onto a block the reader still
	// reads. The array starts at most maxFirstSlots long, and an unbounded
	// pipe's at 16; past that, it grows as the pipe fills (see slotsFor).
	n := 16
	if maxBuffered > 0 {
		span := min((maxBuffered-1)/p.blockSize+1, p.capacity) + 1 // (x-1)/y+1: x+y-1 can overflow
		n = 1
		for n < min(span, maxFirstSlots) {
			n *= 2
		}
	}
	pp.slots0 = make([]uint32, n)
	pp.slots.Store(&pp.slots0)
	if p.obs.debug {
		pp.made = callers(1) // from NewPipe's caller on
	}
	// One allocation for both ends, so that the finalizer runs once both
	// are unreachable. A finalizer, not runtime.AddCleanup: it costs no
	// allocation, where a cleanup costs two per pipe, and the ends are
	// never part of a cycle (the pipe does not point back to them), which
	// is what a finalizer needs in order to run.
	ends := &pipeEnds{PipeReader{pp}, PipeWriter{pp}}
	runtime.SetFinalizer(ends, (*pipeEnds).abandon)
	return &ends.r, &ends.w
}

// maxFirstSlots bounds the slots array NewPipe makes: 256 KiB, the span of
// a 256 MiB bound in 4 KiB blocks.
const maxFirstSlots = 1 << 16

// pipeEnds holds the two ends of a pipe in one allocation.
type pipeEnds struct {
	r PipeReader
	w PipeWriter
}

// abandon is the finalizer of a pipe whose ends are both unreachable: it
// gives back what the pipe still holds. If the reader was not closed,
// reclaim reports the leak (see Config.OnLeak) once it has freed the
// blocks. Nobody can close the reader meanwhile: its end is unreachable.
func (e *pipeEnds) abandon() {
	pp := e.r.p
	if !pp.rclosed.Load() {
		pp.abandoned.Store(true) // before closeRead sets rclosed, which reclaim loads first
	}
	pp.closeRead(nil)
}

// turn serialises the goroutines of one side of a pipe. Unlike a
// sync.Mutex, a goroutine waiting for its turn gives up when its context
// ends, and is counted in the pool's Waiters.
type turn struct {
	held atomic.Uint32
	free park.Event // woken when the turn is given back
}

// tryTake takes t if nobody holds it.
func (t *turn) tryTake() bool { return t.held.CompareAndSwap(0, 1) }

// give gives t back and wakes those waiting for it.
func (t *turn) give() {
	t.held.Store(0)
	t.free.Wake()
}

// take takes t, waiting for it until ctx ends.
func (pp *pipe) take(ctx context.Context, t *turn) error {
	for !t.tryTake() {
		seq := t.free.Prepare()
		if t.tryTake() {
			return nil
		}
		if err := pp.park(ctx, &t.free, seq); err != nil {
			return err
		}
	}
	return nil
}

// leave gives t back and, if the reader has closed, frees the pipe's
// blocks once nobody is in it.
func (pp *pipe) leave(t *turn) {
	t.give()
	pp.reclaim()
	pp.pool.pressed()
}

// park waits on ev until it moves past seq or ctx ends, counting the
// goroutine in the pool's Waiters.
func (pp *pipe) park(ctx context.Context, ev *park.Event, seq uint32) error {
	w := &pp.pool.pipeWaiting
	w.Inc()
	err := ev.Wait(ctx, seq)
	w.Dec()
	return err
}

// blockSlot returns the slots entry of stream block k.
func blockSlot(slots []uint32, k uint64) *uint32 { return &slots[k&uint64(len(slots)-1)] }

// The writer's side. Every method below up to the reader's side is called
// with wturn held.

// writeErr returns why the writer can no longer write, or nil.
func (pp *pipe) writeErr() error {
	switch {
	case pp.rclosed.Load():
		return pp.rerr
	case pp.written.Load()&wclosed != 0:
		return io.ErrClosedPipe
	}
	return nil
}

// room returns how many of want more bytes the bound lets the writer
// buffer now. It loads read only when what it last saw leaves less room
// than wanted.
func (pp *pipe) room(want int) int {
	if pp.max == 0 {
		return want
	}
	if b := pp.buffered(); b < pp.max && pp.max-b >= uint64(want) {
		return want
	}
	pp.seenRead = pp.read.Load()
	b := pp.buffered()
	if b >= pp.max {
		// Full, or the reader moved both positions on and has yet to
		// publish its own (see dropTail).
		return 0
	}
	return int(min(uint64(want), pp.max-b))
}

// buffered returns how many bytes the writer counts as unread, as of
// seenRead. A reader that dropped the tail has moved both positions on
// (see dropTail), so its position can be past the writer's, which then
// still has to find out: nothing is unread.
func (pp *pipe) buffered() uint64 {
	if pp.seenRead >= pp.wpos {
		return 0
	}
	return pp.wpos - pp.seenRead
}

// awaitRoom waits until the writer may buffer some of want more bytes, and
// returns how many, or why it cannot write.
func (pp *pipe) awaitRoom(ctx context.Context, want int) (int, error) {
	for {
		if n := pp.room(want); n > 0 {
			return n, nil
		}
		seq := pp.space.Prepare()
		if n := pp.room(want); n > 0 {
			return n, nil
		}
		if err := pp.writeErr(); err != nil {
			return 0, err
		}
		if err := pp.park(ctx, &pp.space, seq); err != nil {
			return 0, err
		}
		if err := pp.writeErr(); err != nil {
			return 0, err
		}
	}
}

// blockAt returns the block to write at wpos, and whether it is fresh: the
// tail, if the writer can claim it, or else a block from the pool, put in
// its slot. want is how many bytes the writer is about to write (within
// the room the bound leaves), so that one reservation covers their blocks.
// If the reader has dropped the tail, blockAt moves wpos on as the reader
// did and returns errMoved: the caller must work out the room again.
func (pp *pipe) blockAt(ctx context.Context, want int) (blk uint32, fresh bool, err error) {
	k := pp.wpos / pp.bs
	if pp.wpos%pp.bs != 0 {
		v := pp.wpos<<posShift | tailFree
		if pp.written.CompareAndSwap(v, v&^tailFree) {
			return *blockSlot(*pp.slots.Load(), k), false, nil
		}
		v = pp.written.Load()
		if v&wclosed != 0 {
			return noBlock, false, io.ErrClosedPipe
		}
		// The reader read everything and dropped the tail, moving the
		// position on to the next block: the writer writes on there, in
		// a fresh block, once it has fitted what it writes to the room
		// the bound leaves from there.
		pp.wpos = v >> posShift
		return noBlock, false, errMoved
	}
	if pp.reserved == 0 {
		if err := pp.reserve(ctx, want); err != nil {
			return noBlock, false, err
		}
	}
	pp.reserved--
	// From the reader's shard's rings first, where the reader frees the
	// pipe's blocks: the pipe cycles through its own blocks, and leaves
	// the writer's shard's to the Bytes of the writer's core, whose
	// blocks would otherwise be pulled over to the pipe's cores (and
	// Pipe64MiB measures slower that way; see bench/RESULTS.md). The
	// reservation was made in the writer's shard (see pipeShards).
	blk = pp.pool.getBlock(pp.rshard)
	*blockSlot(pp.slotsFor(k), k) = blk
	return blk, true, nil
}

// errMoved is blockAt's report that wpos has moved.
var errMoved = errors.New("bytespool: the write position moved")

// reserve reserves the blocks that want bytes from wpos need, all at once
// at every level (the pipe's budget's levels, leaf first, then the pool;
// see Budget), but never more than the smallest cap on that path could
// give while the pipe holds what it holds: the rest comes in a later
// reservation, once the reader has freed blocks. The writer queues at
// each level while it must; if it gives up, it holds nothing anywhere.
func (pp *pipe) reserve(ctx context.Context, want int) error {
	bs := pp.bs
	first := pp.wpos / bs
	need := int((pp.wpos+uint64(want)+bs-1)/bs - first)
	held := int(first - min(first, pp.seenRead/bs)) // blocks from the reader's (as last seen) to the writer's
	pool, bg := pp.pool, pp.budget
	limit := pool.capacity
	if bg != nil {
		limit = bg.limit
	}
	need = min(need, max(1, limit-held))
	for l := bg; l != nil; l = l.parent {
		if l.tryTake(need) {
			continue
		}
		q := l.enqueue(need, pp)
		if err := pp.writeErr(); err != nil {
			// An end closed before we queued, so its abort missed us.
			l.abortOver(pp, 0, err)
		}
		if err := l.wait(ctx, q, need); err != nil {
			bg.releaseBelow(l, need)
			return err
		}
	}
	if pool.tryReserve(need, pp.shard) {
		pp.reserved = need
		return nil
	}
	q, err := pool.enqueue(need, pp)
	if err != nil {
		bg.release(need)
		return err
	}
	if err := pp.writeErr(); err != nil {
		pool.abort(pp, err) // as above
	}
	if err := pool.wait(ctx, q, need); err != nil {
		bg.release(need)
		return err
	}
	pp.reserved = need
	return pp.writeErr()
}

// unreserve gives back the reservations the writer did not use.
func (pp *pipe) unreserve() {
	if pp.reserved > 0 {
		pp.pool.release(pp.reserved, pp.shard)
		pp.budget.release(pp.reserved)
		pp.reserved = 0
	}
}

// freer returns a freer that gives the reader's blocks back to the pool
// and the pipe's budget (see freer).
func (pp *pipe) freer() freer {
	return freer{a: &pp.pool.allocator, shard: pp.rshard, budget: pp.budget}
}

// abort makes the writer's waits for blocks, at every level, return err.
func (pp *pipe) abort(err error) {
	pp.pool.abort(pp, err)
	pp.budget.abort(pp, err)
}

// slotsFor returns the slots array with an entry for stream block k that
// the reader no longer needs, growing it if the pipe spans more blocks than
// it has slots.
func (pp *pipe) slotsFor(k uint64) []uint32 {
	slots := *pp.slots.Load()
	if k-pp.seenRead/pp.bs < uint64(len(slots)) {
		return slots
	}
	pp.seenRead = pp.read.Load()
	from := pp.seenRead / pp.bs
	if k-from < uint64(len(slots)) {
		return slots
	}
	// Only a pipe whose array is shorter than its bound (see NewPipe)
	// gets here. k-from is len(slots): double the array, copying the
	// entries of the blocks from the reader's on. The reader may still
	// use the old array; its entries stay valid for every block it can
	// reach.
	grown := make([]uint32, 2*len(slots))
	for j := from; j < k; j++ {
		*blockSlot(grown, j) = *blockSlot(slots, j)
	}
	pp.slots.Store(&grown)
	return grown
}

// publish makes the bytes up to pos readable and, if pos is mid-block,
// hands the tail to whoever claims it first. It fails, publishing nothing,
// once the writer has closed; the block at wpos is then handed back with
// giveBack.
func (pp *pipe) publish(pos uint64) bool {
	next := pos << posShift
	if pos%pp.bs != 0 {
		next |= tailFree
	}
	if !pp.written.CompareAndSwap(pp.wpos<<posShift, next) {
		return false
	}
	grew := pos != pp.wpos
	pp.wpos = pos
	if grew {
		pp.data.Wake()
	}
	return true
}

// giveBack returns the block the writer holds at wpos after publishing
// nothing in it: a fresh block at the start of its stream block goes to
// the pool, to the ring where the writer looks first; a block mid-way is
// the tail again, for the reader to free.
func (pp *pipe) giveBack(blk uint32, fresh bool) {
	if fresh && pp.wpos%pp.bs == 0 {
		// Not freeBlock: pipes keep no hot blocks. Bytes may have been
		// copied into it, unpublished, so it is wiped all the same.
		pp.pool.wipe(blockRun{first: blk, n: 1})
		pp.pool.ringBlock(blk, pp.rshard)
		pp.budget.release(1)
		return
	}
	pp.setWritten(tailFree)
}

// setWritten sets flag in written, whatever else changes it meanwhile.
func (pp *pipe) setWritten(flag uint64) {
	for {
		v := pp.written.Load()
		if pp.written.CompareAndSwap(v, v|flag) {
			return
		}
	}
}

// Write writes p to the pipe, waiting as NewPipe describes. It returns
// len(p), nil once every byte is buffered, or the count buffered so far and
// io.ErrClosedPipe (or the reader's error) if the reader closes first.
func (w *PipeWriter) Write(p []byte) (int, error) {
	return pipeWrite(w, context.Background(), p)
}

// WriteString is Write for a string, without converting it to a []byte.
func (w *PipeWriter) WriteString(s string) (int, error) {
	return pipeWrite(w, context.Background(), s)
}

// WriteContext is Write that gives up when ctx ends. It then returns the
// number of bytes already buffered, which the reader will get, and
// ctx.Err().
//
// Context first: if ctx is already done, WriteContext returns 0, ctx.Err()
// at once, buffering nothing and taking no block, even if there is room
// (see Bytes.WriteContext for why).
func (w *PipeWriter) WriteContext(ctx context.Context, p []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return pipeWrite(w, ctx, p)
}

// pipeWrite is the body of the write methods: it copies p block by block,
// publishing each block's bytes as soon as they are in.
func pipeWrite[T bytesOrString](w *PipeWriter, ctx context.Context, p T) (int, error) {
	pp := w.p
	if err := pp.take(ctx, &pp.wturn); err != nil {
		return 0, err
	}
	defer pp.leave(&pp.wturn)
	defer pp.unreserve()
	n := 0
	for {
		if err := pp.writeErr(); err != nil {
			return n, err
		}
		if n == len(p) {
			return n, nil
		}
		chunk, err := pp.awaitRoom(ctx, len(p)-n)
		if err != nil {
			return n, err
		}
		for end := n + chunk; n < end; {
			blk, fresh, err := pp.blockAt(ctx, end-n)
			if err == errMoved {
				break
			}
			if err != nil {
				return n, err
			}
			k := copy(pp.pool.block(blk)[pp.wpos%pp.bs:], p[n:end])
			if !pp.publish(pp.wpos + uint64(k)) {
				pp.giveBack(blk, fresh)
				return n, io.ErrClosedPipe
			}
			n += k
		}
	}
}

// ReadFrom reads from r into the pipe until io.EOF, which it does not
// return, or an error, which it does; it waits like Write, and holds the
// writers' turn throughout. It publishes what each read brings at once.
//
// It never takes a block that its data does not go into. While the write
// position is in the middle of a block, it reads straight into the rest of
// that block. At a block boundary it reads up to 512 bytes into a small
// buffer of the pipe's first, and takes a block (waiting for one like
// Write) only if bytes come. So a source at its end needs no block, and a
// ReadFrom waiting on a slow source holds no empty block; it still waits,
// like Write, while maxBuffered bytes are unread, before it reads on.
//
// ReadFrom is ReadFromContext with context.Background().
func (w *PipeWriter) ReadFrom(r io.Reader) (int64, error) {
	return w.ReadFromContext(context.Background(), r)
}

// ReadFromContext is ReadFrom that gives up when ctx ends: it then returns
// the bytes it has buffered, which the reader will get, and ctx.Err(). It
// looks at ctx before each read of r, and gives up while it waits for its
// turn, for room or for a block. A read blocked inside r.Read cannot be
// interrupted: ctx is looked at again once r.Read returns, so to bound that
// wait, make the source return when ctx ends, as by closing it or setting a
// deadline on a net.Conn. Bytes read into the small buffer at a block
// boundary (at most 512) are lost if ctx ends while it waits for their
// block.
//
// Context first: if ctx is already done, it returns 0, ctx.Err() at once,
// reading nothing from r (see Bytes.WriteContext for why).
func (w *PipeWriter) ReadFromContext(ctx context.Context, r io.Reader) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	pp := w.p
	if err := pp.take(ctx, &pp.wturn); err != nil {
		return 0, err
	}
	defer pp.leave(&pp.wturn)
	defer pp.unreserve()
	var total int64
	for {
		if err := pp.writeErr(); err != nil {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
		off := int(pp.wpos % pp.bs)
		limit, err := pp.awaitRoom(ctx, int(pp.bs)-off)
		if err != nil {
			return total, err
		}
		blk, fresh := noBlock, false
		var buf []byte
		if off == 0 {
			buf = pp.probe[:min(limit, probeSize)]
		} else {
			blk, fresh, err = pp.blockAt(ctx, limit)
			if err == errMoved {
				continue
			}
			if err != nil {
				return total, err
			}
			buf = pp.pool.block(blk)[off : off+limit]
		}
		n, rerr := pp.readInto(r, buf, blk, fresh)
		if err := pp.writeErr(); err != nil {
			if blk != noBlock {
				pp.giveBack(blk, fresh)
			}
			return total, err
		}
		if blk == noBlock && n > 0 {
			// Bytes came into the small buffer: now they need a
			// block. wpos is at a boundary, which only the writer
			// moves, so blockAt returns a fresh block.
			if blk, fresh, err = pp.blockAt(ctx, n); err != nil {
				return total, err
			}
			copy(pp.pool.block(blk), buf[:n])
			if pp.pool.zero {
				clear(buf[:n]) // it held the source's bytes
			}
		}
		if blk != noBlock {
			if n == 0 {
				pp.giveBack(blk, fresh)
			} else if !pp.publish(pp.wpos + uint64(n)) {
				pp.giveBack(blk, fresh)
				return total, io.ErrClosedPipe
			}
		}
		total += int64(n)
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// readInto is one read of a ReadFrom: r.Read(buf), where buf is the rest of
// block blk from the write position (fresh is as blockAt returned it), or,
// with blk noBlock, the pipe's small buffer. If r panics, or returns a
// count outside [0, len(buf)], which breaks the io.Reader contract
// (readInto then panics, as bytes.Buffer.ReadFrom does), the block goes
// back (see giveBack) before the panic goes on.
func (pp *pipe) readInto(r io.Reader, buf []byte, blk uint32, fresh bool) (int, error) {
	done := false
	defer func() {
		if !done && blk != noBlock {
			pp.giveBack(blk, fresh)
		}
	}()
	n, err := r.Read(buf)
	checkReadCount(n, len(buf))
	done = true
	return n, err
}

// Close closes the writer: once the reader has read what is buffered, its
// reads return io.EOF. Writes after Close return io.ErrClosedPipe. Close
// always returns nil.
func (w *PipeWriter) Close() error { return w.CloseWithError(nil) }

// CloseWithError closes the writer: once the reader has read what is
// buffered, its reads return err, or io.EOF if err is nil. Like
// io.PipeWriter.CloseWithError, it never overwrites an earlier error and
// always returns nil. It does not wait for a Write in progress: that Write
// returns io.ErrClosedPipe, and its bytes not yet buffered are not.
func (w *PipeWriter) CloseWithError(err error) error {
	pp := w.p
	if err == nil {
		err = io.EOF
	}
	pp.closeMu.Lock()
	first := pp.written.Load()&wclosed == 0
	if first {
		pp.werr = err
		pp.setWritten(wclosed)
	}
	pp.closeMu.Unlock()
	if first {
		pp.abort(io.ErrClosedPipe) // a writer waiting for blocks now fails
	}
	pp.data.Wake()
	pp.space.Wake() // a writer waiting for room now fails
	return nil
}

// The reader's side. Every method below up to Close is called with rturn
// held.

// awaitData waits until there are unread bytes and returns the write
// position, or returns why there will be none. A reader that has read
// everything frees the tail on the way.
func (pp *pipe) awaitData(ctx context.Context) (uint64, error) {
	for {
		if pp.rclosed.Load() {
			return 0, io.ErrClosedPipe
		}
		v := pp.written.Load()
		if w := v >> posShift; w != pp.rpos {
			return w, nil
		}
		f := pp.freer()
		if pp.dropTail(v, &f) {
			pp.publishRead(&f)
			continue
		}
		if v&wclosed != 0 {
			return 0, pp.werr
		}
		seq := pp.data.Prepare()
		if pp.written.Load() != v || pp.rclosed.Load() {
			continue
		}
		if err := pp.park(ctx, &pp.data, seq); err != nil {
			return 0, err
		}
	}
}

// dropTail gives the tail to f, to be freed, if the reader has read
// everything up to it (as of v, a value of written) and the writer is not
// writing it, and reports whether it did. It moves the write position and
// the read position on to the start of the next block, where the writer
// starts a fresh block: the rest of the tail would never be read. So the
// bytes unread stay the same, and the writer, until it sees the move, counts
// the dropped block as unread bytes: the pipe never holds more blocks than
// its bound while the tail is on its way back to the pool.
func (pp *pipe) dropTail(v uint64, f *freer) bool {
	w := v >> posShift
	if v&tailFree == 0 || w != pp.rpos {
		return false
	}
	// The slot is stable: while tailFree is set the writer does not
	// touch slots, and after the CAS its next block is the next one.
	blk := *blockSlot(*pp.slots.Load(), w/pp.bs)
	next := (w/pp.bs + 1) * pp.bs
	if !pp.written.CompareAndSwap(v, next<<posShift|v&wclosed) {
		return false
	}
	f.add(blk)
	pp.rpos = next
	return true
}

// consume moves the read position n bytes on, up to w (a write position the
// reader loaded), giving f the blocks it passes the end of, and the tail if
// that leaves nothing unread; then it publishes the position.
func (pp *pipe) consume(n int, w uint64) {
	slots := *pp.slots.Load()
	f := pp.freer()
	for end := pp.rpos + uint64(n); pp.rpos < end; {
		next := min(end, (pp.rpos/pp.bs+1)*pp.bs)
		if next%pp.bs == 0 {
			f.add(*blockSlot(slots, pp.rpos/pp.bs))
		}
		pp.rpos = next
	}
	if pp.rpos == w && w%pp.bs != 0 {
		pp.dropTail(pp.written.Load(), &f)
	}
	pp.publishRead(&f)
}

// publishRead frees the blocks in f, then publishes the read position and
// wakes a writer waiting for room. Freeing first means that a writer that
// sees the room never takes new blocks while the pool still counts the
// old ones as the pipe's.
func (pp *pipe) publishRead(f *freer) {
	f.done()
	pp.read.Store(pp.rpos)
	pp.space.Wake()
}

// copyOut copies the unread bytes below w into p and returns how many.
func (pp *pipe) copyOut(p []byte, w uint64) int {
	slots := *pp.slots.Load()
	n := 0
	for pos := pp.rpos; n < len(p) && pos < w; {
		off := pos % pp.bs
		blk := pp.pool.block(*blockSlot(slots, pos/pp.bs))
		k := copy(p[n:], blk[off:min(pp.bs, off+(w-pos))])
		n += k
		pos += uint64(k)
	}
	return n
}

// Read reads up to len(p) buffered bytes into p, waiting until there are
// some. Once the writer has closed and the buffer is drained, it returns
// io.EOF or the writer's error; after the reader's own Close it returns
// io.ErrClosedPipe. len(p) == 0 returns 0, nil at once.
func (r *PipeReader) Read(p []byte) (int, error) {
	return r.ReadContext(context.Background(), p)
}

// ReadContext is Read that gives up when ctx ends, returning 0 and
// ctx.Err().
//
// Context first: if ctx is already done, ReadContext returns 0, ctx.Err()
// at once and consumes nothing, even if data is buffered (see
// Bytes.WriteContext).
func (r *PipeReader) ReadContext(ctx context.Context, p []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	pp := r.p
	if err := pp.take(ctx, &pp.rturn); err != nil {
		return 0, err
	}
	defer pp.leave(&pp.rturn)
	w, err := pp.awaitData(ctx)
	if err != nil {
		return 0, err
	}
	n := pp.copyOut(p, w)
	pp.consume(n, w)
	return n, nil
}

// WriteTo writes everything the pipe delivers to w until the writer closes.
// As the io.Writer contract says, w must not keep the slices it is given
// after Write returns: they are the pool's memory.
// It returns nil after the writer's Close, the writer's error after
// CloseWithError, or w's error. It writes straight from the blocks: a
// net.Conn gets all buffered blocks in one writev, any other writer one
// Write per run of blocks that lie back to back in the pool's memory (as
// Bytes.WriteTo does). The bytes being written still count against maxBuffered
// until w has taken them. It takes the readers' turn for each batch, so
// other readers may read between batches. A w that takes blocks of the
// same pool, such as a Bytes of it, copies into fresh blocks while the pipe
// still holds its own: where the pipe holds most of the pool, that waits
// until other holders free blocks.
func (r *PipeReader) WriteTo(w io.Writer) (int64, error) {
	pp := r.p
	var total int64
	for {
		n, err := pp.writeBatch(w)
		total += n
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// writeBatch writes what is buffered to w, within one turn of the readers.
func (pp *pipe) writeBatch(w io.Writer) (int64, error) {
	ctx := context.Background()
	if err := pp.take(ctx, &pp.rturn); err != nil {
		return 0, err
	}
	defer pp.leave(&pp.rturn)
	end, err := pp.awaitData(ctx)
	if err != nil {
		return 0, err
	}
	sc := &pp.scratch
	slots := *pp.slots.Load()
	sc.bufs = sc.bufs[:0]
	var next uint32 // the block after the one the last buffer ends in
	for pos := pp.rpos; pos < end; {
		off := pos % pp.bs
		k := int(min(pp.bs-off, end-pos))
		blk := *blockSlot(slots, pos/pp.bs)
		// Each buffer's capacity runs to the end of its slab. If blk
		// comes next in that slab, the buffer, which runs to the end
		// of its last block, grows over blk.
		if last := len(sc.bufs) - 1; last >= 0 && blk == next && len(sc.bufs[last])+k <= cap(sc.bufs[last]) {
			sc.bufs[last] = sc.bufs[last][:len(sc.bufs[last])+k]
		} else {
			mem, _ := pp.pool.span(blk)
			sc.bufs = append(sc.bufs, mem[off:][:k])
		}
		next = blk + 1
		pos += uint64(k)
	}
	for i, b := range sc.bufs {
		sc.bufs[i] = b[:len(b):len(b)] // w must not reach past the bytes into the next block
	}
	n, werr := writeOut(w, sc)
	clear(sc.bufs) // drop the references into the arena
	short := n < int64(end-pp.rpos)
	pp.consume(int(n), end)
	if werr == nil && short {
		werr = io.ErrShortWrite
	}
	return n, werr
}

// Close closes the reader: it returns every block the pipe holds to the
// pool, and writes from then on, including those waiting, return
// io.ErrClosedPipe. Close always returns nil.
func (r *PipeReader) Close() error { return r.CloseWithError(nil) }

// CloseWithError closes the reader like Close, but writes return err, or
// io.ErrClosedPipe if err is nil. It never overwrites an earlier error and
// always returns nil. It does not wait for a Read or WriteTo in progress
// (nor for a Write): the blocks go back to the pool when the last of them
// returns.
func (r *PipeReader) CloseWithError(err error) error {
	r.p.closeRead(err)
	return nil
}

// closeRead is the reader's close, shared with abandon.
func (pp *pipe) closeRead(err error) {
	if err == nil {
		err = io.ErrClosedPipe
	}
	pp.closeMu.Lock()
	first := !pp.rclosed.Load()
	if first {
		pp.rerr = err
		pp.rclosed.Store(true)
	}
	pp.closeMu.Unlock()
	if first {
		pp.abort(err)
	}
	pp.space.Wake()
	pp.data.Wake() // readers waiting for data now fail
	pp.reclaim()
	pp.pool.pressed()
}

// reclaim frees the pipe's blocks once the reader has closed, if nobody is
// in the pipe; otherwise the last to leave does it (leave calls reclaim
// after giving its turn back).
//
// It takes the writers' turn first, then the readers'. If the readers'
// turn is held, its holder reclaims when it leaves, unless its own attempt
// came while we held the writers' turn; so after giving that back we look
// again, and try once more if the readers' turn has been given back since.
func (pp *pipe) reclaim() {
	for pp.rclosed.Load() && !pp.freed.Load() {
		if !pp.wturn.tryTake() {
			return // its holder reclaims when it leaves
		}
		if pp.rturn.tryTake() {
			blocks, unread, leaked := 0, uint64(0), false
			if !pp.freed.Load() {
				blocks, unread = pp.freeAll()
				pp.freed.Store(true)
				// A leak unless the writer closed and the reader
				// drained it: then nothing was lost but the Close
				// of a reader that io.Pipe users often leave out.
				leaked = pp.abandoned.Load() && (blocks > 0 || pp.written.Load()&wclosed == 0)
			}
			pp.rturn.give()
			pp.wturn.give()
			if leaked {
				pp.pool.reportLeak(Leak{Blocks: blocks, Bytes: int(unread), Pipe: true}, pp.made)
			}
			return
		}
		pp.wturn.give()
		if pp.rturn.held.Load() != 0 {
			return
		}
	}
}

// freeAll returns every block of the pipe to the pool, and returns how
// many and the bytes that were unread in them. Both turns are held, so
// nobody else is in the stream.
func (pp *pipe) freeAll() (blocks int, unread uint64) {
	slots := *pp.slots.Load()
	f := pp.freer()
	v := pp.written.Load()
	w := v >> posShift
	for k := pp.rpos / pp.bs; k < w/pp.bs; k++ {
		f.add(*blockSlot(slots, k))
	}
	if w%pp.bs != 0 && v&tailFree != 0 {
		// The tail, unless the reader freed it when it caught up.
		for !pp.written.CompareAndSwap(v, v&^tailFree) {
			v = pp.written.Load() // only wclosed can have changed
		}
		f.add(*blockSlot(slots, w/pp.bs))
	}
	blocks, unread = f.total, w-min(w, pp.rpos)
	f.done()
	pp.rpos = w
	pp.read.Store(w)
	return blocks, unread
}
