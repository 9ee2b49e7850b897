package bytespool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"

	"github.com/zjj/bytespool/internal/park"
	"go.uber.org/atomic"
)

// Bytes is a FIFO byte buffer whose memory is blocks of its pool. It reads
// and writes like a bytes.Buffer: Write appends, Read consumes from the
// front, and a block whose bytes have all been read goes back to the pool at
// once.
//
// A Bytes is safe for concurrent use by several goroutines. Each Write,
// WriteString and WriteByte appends its bytes contiguously, and each Read
// takes a contiguous run from the front. Writers wait for blocks without
// holding the Bytes' lock, so a Write that waits never holds up Read, Len,
// Reset or Free of the same Bytes.
//
// Get a Bytes from BytesPool.NewBytes and give it back with Free (or Close).
// Free hands the Bytes back to the pool for reuse: as with a buffer after
// sync.Pool.Put, using it after Free is a bug. Until the pool issues it
// again its methods return ErrClosed (Len returns 0); after that they act
// on another owner's data. A Bytes that is dropped without Free returns its
// blocks to the pool once the garbage collector finds it unreachable.
type Bytes struct {
	st *state // never nil; the cleanup registered on the Bytes holds st, not the Bytes
}

// state is the body of a Bytes. It is kept apart from the *Bytes header so
// that runtime.AddCleanup can reclaim it when the header becomes
// unreachable: the cleanup's argument must not point back to the header.
//
// While the header is free (closed is set), st.c holds no blocks and no
// pointer into the pool. A free header waits in the pool's header cache,
// which the runtime keeps through the next garbage collection; a free
// header that still reached the pool would keep the pool and its arena
// alive that long (and, through the cleanup's argument, one collection
// more), and a program that makes and drops pools would see its heap grow
// without bound. A call that unlocks mu may find the header freed, or
// reissued, when it locks mu again, so it takes the pool before it unlocks
// (see waitBlocks).
type state struct {
	// The pointers come first and are few, and what only some Bytes use
	// is behind rare: the collector scans every live state at every
	// cycle, so its cost grows with the state's size and pointer words,
	// and a pool that holds its data in many Bytes pays it for each.
	rare *stateRare // nil until a Bytes needs it (see rareLocked); kept when the header is reissued
	c    chain

	mu     sync.Mutex
	maxLen int // 0 = bounded by the pool only

	pending int // bytes promised to calls that wait or read with mu unlocked

	id uint64 // orders the locks of two states (see handTo)

	// gen is bumped by every Free. A call that unlocks mu (to wait for
	// blocks, or to call a reader or writer) compares it afterwards, so
	// that it never touches the data of the header's next owner.
	gen uint32

	uses uint32 // how many times NewBytes has issued this header (see shardRecheck)

	waiting int32 // writers queued in the pool's semaphore for this Bytes

	closed bool // set by Free; cleared by NewBytes when the header is reissued
	debug  bool // made by a pool with Config.Debug: never reissued; set once, before the header is shared

	// writingTo is set while a WriteTo holds the turn (see takeTurn);
	// rare.turnFree is woken when it gives the turn back, or when Free
	// takes it away.
	writingTo bool
}

// stateRare is the part of a state that only some Bytes use: those that
// WriteTo or ReadFrom, and those of a pool with Config.Debug. Its fields
// are guarded by the state's mu, and the state's rare pointer, once set
// (under mu), stays.
type stateRare struct {
	turnFree park.Event // see state.writingTo

	scratch *writeToScratch  // WriteTo's buffers, borrowed while in use
	probe   *[probeSize]byte // ReadFrom's small buffer, borrowed while in use

	// In Debug mode only: the stacks of NewBytes' caller and of the
	// first Free's caller (see callers).
	made, freedAt []uintptr
}

// rareLocked returns st.rare, made first if st has none. Called with mu
// held, or before the state is shared.
func (st *state) rareLocked() *stateRare {
	if st.rare == nil {
		st.rare = new(stateRare)
	}
	return st.rare
}

// madeAt returns the stack of NewBytes' caller, recorded in Debug mode
// only. A Debug header records it before it is shared and is never
// reissued, so madeAt needs no lock.
func (st *state) madeAt() []uintptr {
	if st.rare == nil {
		return nil
	}
	return st.rare.made
}

// lastStateID is the id of the last state made.
var lastStateID atomic.Uint64

var (
	_ io.Reader       = (*Bytes)(nil)
	_ io.Writer       = (*Bytes)(nil)
	_ io.StringWriter = (*Bytes)(nil)
	_ io.ByteReader   = (*Bytes)(nil)
	_ io.ByteWriter   = (*Bytes)(nil)
	_ io.ReaderFrom   = (*Bytes)(nil)
	_ io.WriterTo     = (*Bytes)(nil)
	_ io.Closer       = (*Bytes)(nil)
)

// NewBytes returns an empty Bytes that holds at most maxLen bytes; 0 means
// bounded by the pool only. It panics if maxLen is negative.
func (p *BytesPool) NewBytes(maxLen int) *Bytes {
	p.mustBeMade("NewBytes")
	return p.newBytes(maxLen, nil)
}

// newBytes is NewBytes for a Bytes of budget bg (nil: of the pool alone),
// called by NewBytes or Budget.NewBytes.
func (p *BytesPool) newBytes(maxLen int, bg *Budget) *Bytes {
	if maxLen < 0 {
		panic(fmt.Sprintf("bytespool: NewBytes: maxLen must not be negative, got %d", maxLen))
	}
	var b *Bytes
	if p.obs.debug {
		b = p.newHeader() // never a reissued header: a freed one stays freed
		b.st.debug = true
		b.st.rareLocked().made = callers(1) // from NewBytes' caller on
	} else if b, _ = p.headers.Get().(*Bytes); b == nil {
		b = p.newHeader()
	}
	// No lock: nobody else can reach a header in the pool. Free put it
	// there after its last locked access, and sync.Pool orders that Put
	// before this Get. A call that Free woke and that has yet to run
	// looks only at gen (see waitBlocks), which this does not change.
	st := b.st
	st.c.pool, st.c.budget = p, bg
	st.maxLen = maxLen
	st.closed = false
	if st.uses++; st.uses%shardRecheck == 0 {
		// The P's shard, which the header may have left (see
		// shardRecheck). Under mu, unlike the fields above: a call of
		// the header's last owner that Free left behind gives back
		// what it holds to st.c.shard, which it reads under mu.
		s := p.newShard()
		st.mu.Lock()
		st.c.shard = s
		st.mu.Unlock()
	}
	return b
}

// newHeader makes a free Bytes header and registers, once for the header's
// whole life, the cleanup that reclaims a forgotten one.
func (p *BytesPool) newHeader() *Bytes {
	st := &state{c: chain{shard: p.newShard()}, closed: true, id: lastStateID.Inc()}
	b := &Bytes{st: st}
	runtime.AddCleanup(b, (*state).reclaim, st)
	return b
}

// reclaim returns the blocks of a Bytes whose header the garbage collector
// found unreachable, and reports the leak once st.mu is unlocked. A header
// that was freed, or that sits in the header pool, holds nothing and is no
// leak.
func (st *state) reclaim() {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	p := st.c.pool
	l := Leak{Blocks: st.c.held(), Bytes: st.c.size()}
	st.closeLocked()
	st.mu.Unlock()
	p.pressed()
	p.reportLeak(l, st.madeAt())
}

// closeLocked frees everything a live Bytes holds and marks it closed,
// which lets go of the pool.
func (st *state) closeLocked() {
	st.closed = true
	st.gen++
	st.c.reset()
	st.c.outBytes, st.c.outBlocks = 0, 0 // a WriteTo in flight frees its own
	st.pending = 0
	if st.waiting > 0 {
		st.waiting = 0
		st.c.pool.abort(st, ErrClosed)
		st.c.budget.abort(st, ErrClosed)
	}
	if st.writingTo {
		st.writingTo = false    // the WriteTo in flight frees its own
		st.rare.turnFree.Wake() // and those waiting for the turn return ErrClosed
	}
	st.c.pool, st.c.budget, st.c.blockList = nil, nil, blockList{} // the pointers into the pool (see state)
}

// Free returns every block b holds to the pool and hands b back for reuse.
// A Write, ReadFrom or WriteTo of b that is waiting returns ErrClosed.
//
// b must not be used after Free, Free included (see Bytes): a second Free
// does nothing only until the pool reissues b's header, and after that it
// frees the data of the header's next owner. So pair one Free with each
// NewBytes, and do not both defer b.Free() and call it early.
func (b *Bytes) Free() { b.free("Free") }

// Close is Free, for io.Closer. It returns ErrClosed if b was already freed
// and its header not yet reissued; like a second Free, a second Close is a
// bug (see Free).
func (b *Bytes) Close() error {
	if !b.free("Close") {
		return ErrClosed
	}
	return nil
}

// free is Free, and reports whether b was live. It checks and closes under
// one lock: of two calls racing, only one may hand the header back, or the
// other could free the header's next owner.
//
// In Debug mode it records where the first Free came from, and does not
// hand the header back: a freed header stays freed, so that every later use
// panics (see usedFreed).
func (b *Bytes) free(method string) bool {
	st := b.st
	st.mu.Lock()
	if st.closed {
		st.usedFreed(method)
		st.mu.Unlock()
		return false
	}
	p := st.c.pool
	if st.debug {
		st.rare.freedAt = callers(1) // from Free's or Close's caller on
	}
	st.closeLocked()
	st.mu.Unlock()
	p.pressed()
	if !st.debug {
		p.headers.Put(b)
	}
	return true
}

// Len returns the number of unread bytes.
func (b *Bytes) Len() int {
	st := b.st
	st.mu.Lock()
	if st.closed {
		st.usedFreed("Len")
	}
	n := st.c.n
	st.mu.Unlock()
	return n
}

// Reset drops the unread bytes and returns their blocks to the pool; b stays
// usable. Writes waiting for blocks are not affected.
func (b *Bytes) Reset() {
	st := b.st
	st.mu.Lock()
	p := st.c.pool
	if !st.closed {
		st.c.reset()
	} else {
		st.usedFreed("Reset")
	}
	st.mu.Unlock()
	p.pressed()
}

// Write appends p to b. It is all or nothing: it returns len(p), nil, or 0
// and an error, having written nothing.
//
// If b would then hold more than its maxLen, the error is
// ErrBytesCapacityTooSmall; bytes that other writers of b are waiting to
// write count as held. If b would then hold more blocks than the whole pool
// has, the error is ErrPoolTooSmall. Otherwise, if the pool has too few free
// blocks, Write waits until other holders free enough; waiting writers are
// served in arrival order, each getting all the blocks it needs at once.
// If b is freed meanwhile, Write returns ErrClosed.
func (b *Bytes) Write(p []byte) (int, error) {
	return bytesWrite(b, context.Background(), p)
}

// WriteString is Write for a string, without converting it to a []byte.
func (b *Bytes) WriteString(s string) (int, error) {
	return bytesWrite(b, context.Background(), s)
}

// WriteByte appends c, like Write.
func (b *Bytes) WriteByte(c byte) error {
	buf := [1]byte{c}
	_, err := bytesWrite(b, context.Background(), buf[:])
	return err
}

// WriteContext is Write that gives up when ctx ends: it then returns 0 and
// ctx.Err(), having written nothing and holding no blocks, and the writers
// queued behind it move up. Since a write is all or nothing, the count is 0
// whenever the error is not nil.
//
// Context first: if ctx is already done, WriteContext returns 0, ctx.Err()
// at once and changes nothing, even if the pool has the blocks free. (This
// is the opposite of golang.org/x/sync/semaphore, whose Acquire may still
// succeed with a done context: a caller whose request was cancelled should
// not take memory that others are waiting for.)
func (b *Bytes) WriteContext(ctx context.Context, p []byte) (int, error) {
	if b.st.debug {
		b.st.checkLive("WriteContext")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return bytesWrite(b, ctx, p)
}

// bytesWrite is the body of the write methods: a fast path under the lock
// that takes the shard's hot block when the write needs one new block, or
// else reserves the blocks with one CAS, and copies; and a slow path that
// queues for the blocks with the lock released.
func bytesWrite[T bytesOrString](b *Bytes, ctx context.Context, p T) (int, error) {
	st := b.st
	n := len(p)
	st.mu.Lock()
	pool := st.c.pool
	need, err := st.admit(n)
	for err == nil {
		// The pool alone is the fast path, called directly: the
		// chain's wrappers, which look at the budget, are too large
		// for the compiler to inline.
		if need == 1 {
			var blk uint32
			var ok bool
			if st.c.budget == nil {
				blk, ok = pool.tryGetBlock(st.c.shard)
			} else {
				blk, ok = st.c.tryGetBlock()
			}
			if ok {
				writeBlock(&st.c, p, blk)
				st.grew()
				break
			}
		} else if need == 0 ||
			st.c.budget == nil && pool.tryReserve(need, st.c.shard) ||
			st.c.budget != nil && st.c.tryReserve(need) {
			write(&st.c, p, need)
			st.grew()
			break
		}
		if err = st.waitBlocks(ctx, need, n); err == errRecheck {
			need, err = st.admit(n)
			continue
		} else if err != nil {
			break
		}
		// Other writers may have filled or added room in the last block
		// while we waited, so the need may differ now.
		if now := st.c.need(n); now < need {
			st.c.release(need - now)
			need = now
		} else if now > need {
			if !st.c.tryReserve(now - need) {
				// Give the blocks back rather than hold them while
				// waiting for more, and queue again.
				st.c.release(need)
				need, err = st.admit(n)
				continue
			}
			need = now
		}
		write(&st.c, p, need)
		st.grew()
		break
	}
	st.mu.Unlock()
	pool.pressed()
	runtime.KeepAlive(b)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// admit checks a write of n bytes against the limits and returns the number
// of new blocks it needs. Called with mu held.
func (st *state) admit(n int) (int, error) {
	if st.closed {
		st.usedFreed("Write")
		return 0, ErrClosed
	}
	if st.maxLen > 0 && n > st.maxLen-st.c.size()-st.pending {
		return 0, st.c.pool.rejectedIf(ErrBytesCapacityTooSmall)
	}
	need := st.c.need(n)
	if st.c.tooBig(st.c.held() + need) {
		return 0, st.c.pool.rejectedIf(ErrPoolTooSmall)
	}
	return need, nil
}

// grew is called, with mu held, after the chain took on more blocks. A
// writer of b that is queued, at any level, for more blocks than the
// smallest cap on b's path has beside those b now holds can never be
// granted them: it leaves the queue with errRecheck, and admits its write
// again, which fails with ErrPoolTooSmall unless the room b's last block
// now has makes it fit after all.
func (st *state) grew() {
	if st.waiting > 0 { // small enough to inline: every write calls grew
		st.abortImpossible()
	}
}

// abortImpossible is grew's slow path.
func (st *state) abortImpossible() {
	st.c.abortOver(st, st.c.limit()-st.c.held(), errRecheck)
}

// errRecheck is how grew sends a queued writer back to admit.
var errRecheck = errors.New("bytespool: recheck the write against the pool")

// waitBlocks reserves need blocks for a call that will add n bytes, at
// every level of b's path: at its budget's levels, leaf first, then in the
// pool (see Budget for why that order cannot deadlock), waiting in each
// level's queue as it must with mu unlocked. It is called and returns with
// mu held. On success the blocks are reserved at every level and b was not
// freed meanwhile; on failure nothing is reserved anywhere.
func (st *state) waitBlocks(ctx context.Context, need, n int) error {
	gen, p, bg, shard := st.gen, st.c.pool, st.c.budget, st.c.shard
	st.pending += n
	st.waiting++
	var err error
	upto := bg // the levels of bg below upto are reserved
	for l := bg; l != nil && err == nil; l = l.parent {
		if l.tryTake(need) {
			upto = l.parent
			continue
		}
		// Join the queue before unlocking, so that a Free after the
		// unlock finds this waiter and aborts it.
		q := l.enqueue(need, st)
		st.mu.Unlock()
		err = l.wait(ctx, q, need)
		st.mu.Lock()
		if err == nil {
			upto = l.parent
			if st.gen != gen {
				err = ErrClosed
			}
		}
	}
	if err == nil {
		var q park.Waiter
		if q, err = p.enqueue(need, st); err == nil {
			st.mu.Unlock()
			err = p.wait(ctx, q, need)
			st.mu.Lock()
			if err == nil && st.gen != gen {
				p.release(need, shard)
				err = ErrClosed
			}
		}
	}
	if err != nil {
		bg.releaseBelow(upto, need)
	}
	if st.gen != gen {
		// Free ran meanwhile and reset pending and waiting; the header
		// may even belong to a new owner now, so st.c is not ours.
		return ErrClosed
	}
	st.pending -= n
	st.waiting--
	return err
}

// Read reads up to len(p) of the oldest unread bytes into p. It returns 0,
// io.EOF when b is empty and len(p) > 0; it never waits. Blocks whose bytes
// have all been read go back to the pool before Read returns.
func (b *Bytes) Read(p []byte) (int, error) {
	st := b.st
	st.mu.Lock()
	switch {
	case st.closed:
		st.usedFreed("Read")
		st.mu.Unlock()
		return 0, ErrClosed
	case len(p) == 0:
		st.mu.Unlock()
		return 0, nil
	case st.c.n == 0:
		st.mu.Unlock()
		return 0, io.EOF
	}
	pool := st.c.pool
	n := st.c.read(p)
	st.mu.Unlock()
	pool.pressed()
	return n, nil
}

// ReadByte reads and returns the oldest unread byte, or io.EOF if b is empty.
func (b *Bytes) ReadByte() (byte, error) {
	st := b.st
	st.mu.Lock()
	switch {
	case st.closed:
		st.usedFreed("ReadByte")
		st.mu.Unlock()
		return 0, ErrClosed
	case st.c.n == 0:
		st.mu.Unlock()
		return 0, io.EOF
	}
	p := st.c.pool
	c := st.c.readByte()
	st.mu.Unlock()
	p.pressed()
	return c, nil
}

// probeSize bounds what a ReadFrom reads from its source before it has a
// block for it (see Bytes.ReadFrom), as bytes.MinRead bounds what
// bytes.Buffer.ReadFrom asks for at least.
const probeSize = 512

// ReadFrom appends what it reads from r until io.EOF, which it does not
// return, or an error, which it does.
//
// ReadFrom never takes a block that its data does not go into. It reads
// into the room left in b's last block first. When there is none, it reads
// up to 512 bytes into a small buffer, and only if bytes come does it take
// a block (waiting for one like Write), copy them in and, if the source
// filled the buffer, read on straight into the rest of that block. A reader
// with a Len method (bytes.Reader, strings.Reader, bytes.Buffer) that
// reports bytes left is read straight into a new block; one that reports 0
// is taken to be at its end without a read. So a source at its end needs no
// block, a source that fits returns n, nil whatever else the pool holds,
// and a ReadFrom waiting on a slow source holds no empty block.
//
// b is unlocked while r.Read runs, so a slow source holds up nobody, and
// r.Read only ever writes into memory that is not yet b's: the small buffer
// or a new block. What each read brings joins b as soon as the read
// returns, in one piece, behind everything written to b until then (with
// the bytes of the small buffer that went before it into the same new
// block). So a concurrent Read sees a read's bytes once it returns, and a
// Write to b while r.Read runs does not wait for it: its bytes go before
// those of the read in flight, never among them, and no reader can see the
// two out of that order.
//
// ReadFrom never reads more from r than b's maxLen lets b take. If b
// reaches maxLen before r reports io.EOF, ReadFrom returns
// ErrBytesCapacityTooSmall with everything read so far in b, or nil if r
// has a Len method that reports 0. So a source without Len of exactly
// maxLen bytes gets the error; to accept sources of up to n bytes, make b
// with maxLen n+1 and refuse a b.Len() over n (examples/httpbody does).
// Likewise, if b's last block is full and
// b holds as many blocks as the pool has, ReadFrom returns ErrPoolTooSmall
// without reading r (nil if r reports Len 0), so a source that fills the
// pool exactly ends in ErrPoolTooSmall unless it has a Len method. The one
// case where bytes read are lost: bytes read into the small buffer while
// concurrent writes to b took the room they were to go into need a new
// block; if b then holds as many blocks as the pool has, those bytes are
// dropped and ReadFrom returns ErrPoolTooSmall.
//
// If r panics, or reports a count outside [0, len(p)] (ReadFrom then
// panics, as bytes.Buffer's does), b keeps what the reads before brought,
// and nothing of that read, and no block is lost.
//
// ReadFrom is ReadFromContext with context.Background().
func (b *Bytes) ReadFrom(r io.Reader) (int64, error) {
	return b.ReadFromContext(context.Background(), r)
}

// ReadFromContext is ReadFrom that gives up when ctx ends: it then returns
// the bytes it has appended to b so far, which stay in b, and ctx.Err().
// It looks at ctx before each read of r, and gives up while it waits for a
// block (leaving the pool's queue, so that the writers behind it move up).
// A read that is blocked inside r.Read cannot be interrupted: ctx is
// looked at again only once r.Read returns. To bound that wait too, make
// the source return, as by closing it or setting a deadline on a net.Conn
// (SetReadDeadline) when ctx ends.
//
// Bytes that ReadFromContext has read into its small buffer (at most 512,
// read at a block boundary from a source without a Len method) and has no
// block for yet are lost if ctx ends while it waits for that block: the
// count is of the bytes that reached b, and r has given up those bytes.
//
// Context first: if ctx is already done, it returns 0, ctx.Err() at once,
// reading nothing from r and changing nothing, as WriteContext does (see
// there why).
func (b *Bytes) ReadFromContext(ctx context.Context, r io.Reader) (int64, error) {
	st := b.st
	if st.debug {
		st.checkLive("ReadFrom")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c := &st.c
	var total int64
	st.mu.Lock()
	if st.closed {
		st.usedFreed("ReadFrom")
		st.mu.Unlock()
		return 0, ErrClosed
	}
	gen, p, bg := st.gen, c.pool, c.budget
	var probe *[probeSize]byte // borrowed; concurrent ReadFroms of b make their own
	if st.rare != nil {
		probe, st.rare.probe = st.rare.probe, nil
	}
	if probe == nil {
		probe = new([probeSize]byte)
	}
	f := freshBlock{blk: noBlock}
	var err error
	freed := false
loop:
	for {
		if err = ctx.Err(); err != nil {
			break
		}
		limit := math.MaxInt
		if st.maxLen > 0 {
			limit = st.maxLen - c.size() - st.pending - f.fill
		}
		if limit <= 0 {
			if !drained(r) {
				err = ErrBytesCapacityTooSmall
			}
			break
		}
		var buf []byte
		switch room := c.room(); {
		case f.blk != noBlock:
			buf = p.block(f.blk)[f.fill:] // the rest of the new block
		case room > 0:
			buf = probe[:min(room, probeSize)]
		default:
			if l, ok := r.(interface{ Len() int }); ok {
				if l.Len() == 0 {
					break loop
				}
				// r has bytes for a new block: take it first and
				// read straight into it.
				if f.blk, err = st.newBlock(ctx, p, 0); err != nil {
					freed = err == ErrClosed
					break loop
				}
				continue // the limit may have changed while we waited
			}
			if c.tooBig(c.held() + 1) {
				// No block to be had, ever, while b holds what it
				// holds: r is not read, so nothing it has is lost,
				// as with maxLen above.
				err = ErrPoolTooSmall
				break loop
			}
			buf = probe[:min(probeSize, p.blockSize)]
		}
		buf = buf[:min(len(buf), limit)]
		var n int
		var rerr error
		n, freed, rerr = st.readUnlocked(p, bg, gen, r, buf, &f)
		if freed {
			err = ErrClosed
			break
		}
		switch {
		case f.blk != noBlock:
			f.fill += n
			total += int64(st.join(&f))
		case n > 0 && n <= c.room():
			fillRoom(c, buf[:n])
			total += int64(n)
		case n > 0:
			// The bytes need a new block: the last one was full, or
			// writes took its room while r.Read ran.
			blk, nerr := st.newBlock(ctx, p, n)
			if nerr != nil {
				freed = nerr == ErrClosed
				rerr = nerr // the bytes are lost: say why
				break
			}
			f = freshBlock{blk: blk, fill: copy(p.block(blk), buf[:n])}
			if n < len(buf) || n == p.blockSize || rerr != nil {
				// A short read, or the block is full: the source may
				// have no more for now, so the bytes go to b at once.
				total += int64(st.join(&f))
			}
		}
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			break
		}
	}
	if f.blk != noBlock {
		if freed {
			p.freeBlock(f.blk, c.shard)
			bg.release(1)
		} else {
			total += int64(st.join(&f))
		}
	}
	if p.zero {
		clear(probe[:]) // it held the source's bytes
	}
	st.rareLocked().probe = probe
	st.mu.Unlock()
	p.pressed()
	runtime.KeepAlive(b)
	return total, p.rejectedIf(err)
}

// freshBlock is a block a ReadFrom took from the pool and reads into with
// b unlocked: it holds fill bytes from its front, which are not yet b's.
type freshBlock struct {
	blk  uint32 // noBlock if none
	fill int
}

// join appends the bytes of f to b and returns how many (see appendBlock);
// f's block joins b, or, if it holds no bytes or they all fit in the room
// of b's last block, goes back to the pool. f is then empty. Called with
// mu held, while b is the caller's.
func (st *state) join(f *freshBlock) int {
	n, c := f.fill, &st.c
	if f.blk != noBlock {
		if n > 0 && c.appendBlock(f.blk, n) {
			st.grew()
		} else {
			c.freeBlock(f.blk)
		}
	}
	*f = freshBlock{blk: noBlock}
	return n
}

// newBlock takes a block of pool p for a ReadFrom that holds n bytes in its
// small buffer, waiting for it like Write (those bytes count against maxLen
// meanwhile). It is called and returns with mu held, and returns
// ErrPoolTooSmall if b already holds as many blocks as the pool has, and
// ErrClosed if b was freed while it waited: the caller must then leave st.c
// alone.
func (st *state) newBlock(ctx context.Context, p *BytesPool, n int) (uint32, error) {
	if st.c.tooBig(st.c.held() + 1) {
		return noBlock, ErrPoolTooSmall
	}
	if blk, ok := st.c.tryGetBlock(); ok {
		return blk, nil
	}
	if err := st.waitBlocks(ctx, 1, n); err != nil {
		return noBlock, err
	}
	return p.getBlock(st.c.shard), nil
}

// readUnlocked is one read of a ReadFrom: r.Read(buf), with mu released
// meanwhile (it is held on entry and on return), so that a slow source
// holds up nobody. buf is memory that is not b's, the ReadFrom's small
// buffer or the rest of f's block. Meanwhile len(buf), and the bytes f
// holds, count as pending against maxLen. It reports whether b was freed
// meanwhile (gen is the caller's): the header may then belong to someone
// else, and the caller must leave st.c alone and free f's block.
//
// If r panics, or returns a count outside [0, len(buf)], which breaks the
// io.Reader contract (readUnlocked then panics, as bytes.Buffer.ReadFrom
// does), the bytes f held before the read join b (or its block goes back
// to the pool, if b was freed), and pending is restored before the panic
// goes on, with mu unlocked.
func (st *state) readUnlocked(p *BytesPool, bg *Budget, gen uint32, r io.Reader, buf []byte, f *freshBlock) (n int, freed bool, err error) {
	hold := len(buf) + f.fill
	st.pending += hold
	st.mu.Unlock()
	done := false
	defer func() {
		if !done {
			st.mu.Lock()
			if st.endPending(gen, hold) {
				st.join(f)
			} else if f.blk != noBlock {
				p.freeBlock(f.blk, st.c.shard)
				bg.release(1)
			}
			st.mu.Unlock()
		}
	}()
	n, err = r.Read(buf)
	checkReadCount(n, len(buf))
	done = true
	st.mu.Lock()
	return n, !st.endPending(gen, hold), err
}

// endPending takes back the n bytes a call that unlocked mu counted as
// pending, unless b was freed meanwhile, which reset pending; it reports
// whether b is still the caller's.
func (st *state) endPending(gen uint32, n int) bool {
	if st.gen != gen {
		return false
	}
	st.pending -= n
	return true
}

// WriteTo writes b's unread bytes to w, straight from the blocks, until b
// is empty or w fails, and returns how many w took; what w does not take
// stays at the front of b. A short write without an error ends it with
// io.ErrShortWrite, and a count outside [0, len(p)] with an error, none of
// that p taken. w gets slices with cap == len, and must not keep them after
// Write returns. A w that is a Bytes of the same pool gets the blocks
// themselves, without a copy or a new block: all of them, or none and
// ErrBytesCapacityTooSmall. If w is a Bytes of another budget (see
// Budget), the blocks go over only if w's budgets can take them at once;
// otherwise WriteTo copies, as into any io.Writer, waiting like a Write
// into w where w's budgets are full. Concurrent WriteTos of b take turns.
func (b *Bytes) WriteTo(w io.Writer) (int64, error) {
	// How: WriteTo detaches every unread block from b (detachTo), so
	// concurrent reads see them gone and concurrent writes append behind
	// them, though they count against maxLen until w has taken them
	// (outBytes, outBlocks). It then writes them with b unlocked: a TCP or
	// Unix conn gets them all in one writev (net.Buffers), any other
	// writer one Write per run of blocks that lie back to back in the
	// arena, which for data written in large pieces is one Write for many
	// blocks (see writeOut). Blocks w took in full go back to the pool;
	// the rest go back to the front of b (settle). The turn (takeTurn)
	// keeps what one WriteTo puts back in front of what the next takes.
	// To b itself, the bytes move behind those written meanwhile, once.
	// Any writer other than a Bytes of the pool that takes blocks, such
	// as a PipeWriter of it, copies into fresh blocks while b still holds
	// its own, and so waits where b holds most of the pool. If w panics,
	// its bytes stay in b, as in a bytes.Buffer.
	st := b.st
	c := &st.c
	dst, _ := w.(*Bytes)
	if dst != nil && dst.st.debug {
		dst.st.checkLive("Write (as the io.Writer of a WriteTo)")
	}
	var total int64
	st.mu.Lock()
	if st.closed {
		st.usedFreed("WriteTo")
	}
	pool := st.c.pool
	gen0 := st.gen
	st.rareLocked() // for the turn and the scratch
	err := st.takeTurn()
	for err == nil && !(dst == b && total > 0) {
		if c.n == 0 {
			break
		}
		gen, p, bg := st.gen, c.pool, c.budget
		sc := takeScratch(&st.rare.scratch)
		c.detachTo(sc)
		n, left, werr := st.writeDetached(w, dst, sc, p, bg, gen)
		total += n
		switch {
		case st.gen != gen:
			err = ErrClosed
		case werr != nil:
			err = werr
		case left > 0:
			err = io.ErrShortWrite
		}
	}
	st.giveTurn(gen0)
	st.mu.Unlock()
	pool.pressed()
	runtime.KeepAlive(b)
	return total, err
}

// takeTurn waits, with mu unlocked, until no other WriteTo of b is in
// flight, and takes the turn. It is called and returns with mu held, and
// returns ErrClosed, without the turn, if b is freed. After a wait it looks
// at gen before anything else: if Free ran meanwhile, NewBytes may have
// reissued the header and be writing its other fields without mu.
func (st *state) takeTurn() error {
	gen := st.gen
	turnFree := &st.rare.turnFree // WriteTo made rare
	for {
		switch {
		case st.gen != gen || st.closed:
			return ErrClosed
		case !st.writingTo:
			st.writingTo = true
			return nil
		}
		// The holder clears writingTo under mu, then wakes us.
		seq := turnFree.Prepare()
		st.mu.Unlock()
		turnFree.Wait(context.Background(), seq)
		st.mu.Lock()
	}
}

// giveTurn gives back the turn that a WriteTo took while b's generation was
// gen, unless Free took it away meanwhile. Called with mu held. A WriteTo
// that found b freed holds no turn, but nobody else can hold it either, so
// it may call giveTurn all the same.
func (st *state) giveTurn(gen uint32) {
	if st.gen == gen {
		st.writingTo = false
		st.rare.turnFree.Wake()
	}
}

// writeDetached writes to w what detachTo put in sc, with mu released
// meanwhile (it is held on entry and on return), then settles the blocks
// (see settle), parks sc again and returns how many bytes w took and how
// many it left. If w is dst, a Bytes of pool p, the blocks go over to it
// whole instead (see handTo).
//
// If w panics, the blocks are settled as if w had taken nothing, as
// bytes.Buffer keeps its bytes when its writer panics, and the panic goes
// on with mu unlocked.
func (st *state) writeDetached(w io.Writer, dst *Bytes, sc *writeToScratch, p *BytesPool, bg *Budget, gen uint32) (n int64, left int, err error) {
	if dst != nil {
		if n, err = st.handTo(dst.st, sc, p, bg, gen); err != errOtherPool {
			if err != nil {
				left = st.c.settle(p, bg, sc, 0, st.gen == gen)
			}
			st.rare.scratch = sc
			return n, left, err
		}
	}
	st.mu.Unlock()
	done := false
	defer func() {
		if !done {
			st.mu.Lock()
			st.c.settle(p, bg, sc, 0, st.gen == gen)
			st.rare.scratch = sc
			st.giveTurn(gen)
			st.mu.Unlock()
		}
	}()
	n, err = writeOut(w, sc)
	done = true
	st.mu.Lock()
	left = st.c.settle(p, bg, sc, n, st.gen == gen)
	st.rare.scratch = sc
	return n, left, err
}

// handTo hands the blocks of pool p that a WriteTo detached into sc over
// to dst, the state of another Bytes or of st's own, whole and without a
// copy (see adopt), and returns their bytes. It is called and returns with
// st.mu held, and holds dst.mu as well while it moves them, so that no
// moment counts them in both Bytes. It takes the two locks in the order of
// their ids, so that two WriteTos between the same Bytes in opposite
// directions cannot deadlock. If it returns an error, dst took nothing and
// the blocks are still detached.
func (st *state) handTo(dst *state, sc *writeToScratch, p *BytesPool, bg *Budget, gen uint32) (int64, error) {
	if dst != st {
		if dst.id < st.id {
			st.mu.Unlock()
			dst.mu.Lock()
			st.mu.Lock()
		} else {
			dst.mu.Lock()
		}
		defer dst.mu.Unlock()
	}
	// Only a dst other than st unlocks st.mu above, so a Free that ran
	// meanwhile, after which the header may be another owner's, can only
	// have made keep false where the blocks go to another Bytes anyway.
	keep := st.gen == gen // st still counts the blocks (see settle)
	n, err := dst.adopt(p, bg, sc, dst == st)
	if err == nil {
		st.c.handOver(sc, keep)
	}
	return n, err
}

// adopt appends to st the blocks of pool p and budget from that a WriteTo
// detached into sc, and returns their bytes; self says that st is where
// they were detached from and still counts them against its maxLen. Like
// a Write, it takes all or nothing: it returns ErrClosed if st is freed
// and ErrBytesCapacityTooSmall if the bytes do not fit its maxLen. It
// returns errOtherPool, taking nothing, if st is a Bytes of another pool,
// or of another budget whose levels cannot take the blocks at once: the
// WriteTo then copies, as into any io.Writer, so that the bytes go through
// st's levels as a Write's do, waiting where it must.
//
// The blocks stay in use throughout, so the pool's counts do not change;
// between budgets, st's levels take them (without waiting, see move)
// before from's give them back, so no cap is passed on the way.
// The last block of st may keep room that no write will fill, and the
// first adopted block may start past its front: the chain allows both in
// its middle (see chain).
func (st *state) adopt(p *BytesPool, from *Budget, sc *writeToScratch, self bool) (int64, error) {
	n := 0
	for _, b := range sc.bufs {
		n += len(b)
	}
	size := st.c.size()
	if self {
		size -= n
	}
	switch {
	case st.closed:
		return 0, ErrClosed
	case st.c.pool != p:
		return 0, errOtherPool
	case st.maxLen > 0 && n > st.maxLen-size-st.pending:
		return 0, p.rejectedIf(ErrBytesCapacityTooSmall)
	case st.c.budget != from && !move(from, st.c.budget, sc.blocks):
		return 0, errOtherPool
	}
	st.c.pushBack(sc.blockList)
	st.c.n += n
	if !self { // self: the blocks were counted (outBlocks) all along
		st.grew()
	}
	return int64(n), nil
}

// errOtherPool is adopt's report that the blocks are not of its pool.
var errOtherPool = errors.New("bytespool: blocks of another pool")
