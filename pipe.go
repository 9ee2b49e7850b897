package bytespool

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/zjj/bytespool/internal/park"
)

// A pipe is an io.Pipe buffered in pool blocks: the writer appends to a
// chain of blocks and returns at once while fewer than maxBuffered bytes are
// unread; the reader takes from the front and gives blocks back to the pool
// as it empties them.
//
// Waiting: the reader parks on data (an Event the writer wakes after each
// write, at the cost of one atomic when the reader is not parked); the
// writer parks on space (an Event the reader wakes after each read) when
// maxBuffered bytes are unread, and in the pool's queue when the pool has no
// free block. Neither end holds mu while it waits.
type pipe struct {
	mu  sync.Mutex
	c   chain
	max int // maxBuffered; 0 = bounded by the pool only

	rclosed bool  // the reader closed: writes fail with rerr
	wclosed bool  // the writer closed: reads fail with werr once drained
	rerr    error // io.ErrClosedPipe or the reader's CloseWithError
	werr    error // io.EOF or the writer's CloseWithError

	data  park.Event // woken by writes and by the writer's close
	space park.Event // woken by reads and by the reader's close

	scratch *writeToScratch // WriteTo's buffers, borrowed while in use
}

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
// the buffered bytes may start and end mid-block; the block a ReadFrom reads
// into counts too, and bytes a WriteTo is writing out count as buffered
// until the destination has taken them.
//
// Each end may be used by several goroutines at once; concurrent Writes may
// interleave their pieces. A pipe whose two ends are both dropped without
// Close gives its blocks back once the garbage collector finds both
// unreachable.
func (p *BytesPool) NewPipe(maxBuffered int) (*PipeReader, *PipeWriter) {
	if maxBuffered < 0 {
		panic(fmt.Sprintf("bytespool: NewPipe: maxBuffered must not be negative, got %d", maxBuffered))
	}
	pp := &pipe{c: chain{pool: p, shard: p.newShard()}, max: maxBuffered}
	if maxBuffered > 0 {
		// Room for as many extents as the bound allows: a partial
		// block at each end and full ones between.
		pp.c.ext = make([]extent, 0, p.blocksFor(maxBuffered)+2)
	}
	// One allocation for both ends, so that the cleanup runs once both
	// are unreachable. Its argument is the pipe, which points to neither.
	ends := &pipeEnds{PipeReader{pp}, PipeWriter{pp}}
	runtime.AddCleanup(ends, (*pipe).abandon, pp)
	return &ends.r, &ends.w
}

// pipeEnds holds the two ends of a pipe in one allocation.
type pipeEnds struct {
	r PipeReader
	w PipeWriter
}

// abandon is the cleanup of a pipe whose ends are both unreachable: it
// gives back what the pipe still holds.
func (pp *pipe) abandon() { pp.closeRead(nil) }

// wait parks on ev until it moves past seq or ctx ends. It is called and
// returns with mu held, and counts the goroutine in the pool's Waiters.
func (pp *pipe) wait(ctx context.Context, ev *park.Event, seq uint32) error {
	pp.mu.Unlock()
	w := &pp.c.pool.pipeWaiting
	w.Inc()
	err := ev.Wait(ctx, seq)
	w.Dec()
	pp.mu.Lock()
	return err
}

// writeErr returns why the writer can no longer write, or nil.
func (pp *pipe) writeErr() error {
	switch {
	case pp.rclosed:
		return pp.rerr
	case pp.wclosed:
		return io.ErrClosedPipe
	}
	return nil
}

// waitSpace parks a writer until a reader makes room or an end closes. It
// is called and returns with mu held, and returns why the writer can no
// longer write, if it cannot.
func (pp *pipe) waitSpace(ctx context.Context) error {
	if err := pp.wait(ctx, &pp.space, pp.space.Prepare()); err != nil {
		return err
	}
	return pp.writeErr()
}

// reserve reserves need blocks in the pool for a writer, queuing for them
// with mu unlocked if they are not free, and reports whether it queued. It
// is called and returns with mu held. On error it holds no reservation: an
// end that closed while the writer queued gives the blocks back.
func (pp *pipe) reserve(ctx context.Context, need int) (waited bool, err error) {
	c := &pp.c
	if c.pool.sema.TryAcquire(uint64(need), c.shard) {
		return false, nil
	}
	q := c.pool.sema.Enqueue(uint64(need), pp)
	pp.mu.Unlock()
	err = c.pool.sema.Wait(ctx, q)
	pp.mu.Lock()
	if err == nil {
		if err = pp.writeErr(); err != nil {
			c.release(need)
		}
	}
	return true, err
}

// room returns how many of want more bytes the writer may buffer now.
// Bytes that a WriteTo has in flight still count as buffered.
func (pp *pipe) room(want int) int {
	if pp.max > 0 {
		return min(want, pp.max-pp.c.size())
	}
	return want
}

// mayTakeBlock reports whether ReadFrom may take a block to read into. The
// buffered bytes span at most blocksFor(max)+1 blocks (they may start and
// end mid-block); ReadFrom's block must fit within that too.
func (pp *pipe) mayTakeBlock() bool {
	return pp.max == 0 || pp.c.held() <= pp.c.pool.blocksFor(pp.max)
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
func (w *PipeWriter) WriteContext(ctx context.Context, p []byte) (int, error) {
	return pipeWrite(w, ctx, p)
}

// pipeWrite is the body of the write methods. Each round buffers as much of
// p as the pipe bound and the pool allow: the bytes that fit in the room of
// the last block, and whole blocks reserved all at once, so a writer never
// holds some blocks while it waits for others.
func pipeWrite[T bytesOrString](w *PipeWriter, ctx context.Context, p T) (int, error) {
	pp := w.p
	c := &pp.c
	bs := c.pool.blockSize
	n := 0
	pp.mu.Lock()
	err := pp.writeErr()
	for err == nil && n < len(p) {
		chunk := pp.room(len(p) - n)
		if chunk <= 0 {
			err = pp.waitSpace(ctx)
			continue
		}
		need := c.need(chunk)
		// Never ask for more blocks than the pool can give while the
		// pipe holds what it holds; the rest goes in the next round,
		// once the reader has freed blocks.
		if most := max(1, c.pool.capacity-c.held()); need > most {
			chunk, need = c.room()+most*bs, most
		}
		var waited bool
		if need > 0 {
			if waited, err = pp.reserve(ctx, need); err != nil {
				break
			}
		}
		if waited {
			// The reader may have drained blocks and other writers
			// may have written meanwhile: fit the chunk to the blocks
			// we hold and to the room the bound leaves now.
			chunk = min(pp.room(len(p)-n), c.room()+need*bs)
			now := 0
			if chunk > 0 {
				now = c.need(chunk)
			}
			c.release(need - now)
			need = now
			if chunk <= 0 {
				continue
			}
		}
		write(c, p[n:n+chunk], need)
		n += chunk
		pp.data.Wake()
	}
	pp.mu.Unlock()
	return n, err
}

// ReadFrom reads from r into the pipe until io.EOF, which it does not
// return, or an error, which it does; it waits like Write. It reads straight
// into blocks: into a fresh block held outside the lock, which then joins the
// pipe, with the bytes that fit in the room of the last block copied there.
func (w *PipeWriter) ReadFrom(r io.Reader) (int64, error) {
	pp := w.p
	c := &pp.c
	var total int64
	blk := noBlock // the block being read into; held outside the chain
	pp.mu.Lock()
	err := pp.writeErr()
	for err == nil {
		limit := pp.room(c.pool.blockSize)
		if limit <= 0 || (blk == noBlock && !pp.mayTakeBlock()) {
			if blk != noBlock {
				// Do not sit on a block while the reader catches up.
				c.pool.freeBlock(blk, c.shard)
				blk = noBlock
			}
			err = pp.waitSpace(context.Background())
			continue
		}
		if blk == noBlock {
			if _, err = pp.reserve(context.Background(), 1); err != nil {
				break
			}
			blk = c.pool.getBlock(c.shard)
			continue
		}
		n, rerr := c.readBlock(&pp.mu, r, blk, limit)
		if err = pp.writeErr(); err != nil {
			break
		}
		if n > 0 {
			if c.appendBlock(blk, n) {
				blk = noBlock
			}
			total += int64(n)
			pp.data.Wake()
		}
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			break
		}
	}
	if blk != noBlock {
		c.pool.freeBlock(blk, c.shard)
	}
	pp.mu.Unlock()
	return total, err
}

// Close closes the writer: once the reader has read what is buffered, its
// reads return io.EOF. Writes after Close return io.ErrClosedPipe. Close
// always returns nil.
func (w *PipeWriter) Close() error { return w.CloseWithError(nil) }

// CloseWithError closes the writer: once the reader has read what is
// buffered, its reads return err, or io.EOF if err is nil. Like
// io.PipeWriter.CloseWithError, it never overwrites an earlier error and
// always returns nil.
func (w *PipeWriter) CloseWithError(err error) error {
	pp := w.p
	if err == nil {
		err = io.EOF
	}
	pp.mu.Lock()
	if !pp.wclosed {
		pp.wclosed, pp.werr = true, err
	}
	pp.mu.Unlock()
	pp.data.Wake()
	pp.space.Wake() // other writers parked on space now fail
	return nil
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
func (r *PipeReader) ReadContext(ctx context.Context, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	pp := r.p
	pp.mu.Lock()
	err := pp.awaitData(ctx)
	if err != nil {
		pp.mu.Unlock()
		return 0, err
	}
	n := pp.c.read(p)
	pp.mu.Unlock()
	pp.space.Wake()
	return n, nil
}

// awaitData waits, with mu held around it, until the pipe has data or can
// never have more; it returns nil when there is data to read.
func (pp *pipe) awaitData(ctx context.Context) error {
	for pp.c.n == 0 {
		switch {
		case pp.rclosed:
			return io.ErrClosedPipe
		case pp.wclosed:
			return pp.werr
		}
		if err := pp.wait(ctx, &pp.data, pp.data.Prepare()); err != nil {
			return err
		}
	}
	if pp.rclosed {
		return io.ErrClosedPipe
	}
	return nil
}

// WriteTo writes everything the pipe delivers to w until the writer closes.
// It returns nil after the writer's Close, the writer's error after
// CloseWithError, or w's error. It writes straight from the blocks: a
// net.Conn gets all buffered blocks in one writev, any other writer one
// Write per block. The bytes being written still count against maxBuffered
// until w has taken them.
func (r *PipeReader) WriteTo(w io.Writer) (int64, error) {
	pp := r.p
	c := &pp.c
	var total int64
	pp.mu.Lock()
	for {
		if err := pp.awaitData(context.Background()); err != nil {
			pp.mu.Unlock()
			if err == io.EOF {
				err = nil
			}
			return total, err
		}
		sc := takeScratch(&pp.scratch)
		c.detachTo(sc, true)
		pp.mu.Unlock()
		n, werr := writeOut(w, sc)
		pp.mu.Lock()
		total += n
		left := c.settle(sc, n, !pp.rclosed)
		pp.scratch = sc
		pp.space.Wake()
		if werr == nil && left > 0 {
			werr = io.ErrShortWrite
		}
		if werr != nil {
			pp.mu.Unlock()
			return total, werr
		}
	}
}

// Close closes the reader: it returns every block the pipe holds to the
// pool, and writes from then on, including those waiting, return
// io.ErrClosedPipe. Close always returns nil.
func (r *PipeReader) Close() error { return r.CloseWithError(nil) }

// CloseWithError closes the reader like Close, but writes return err, or
// io.ErrClosedPipe if err is nil. It never overwrites an earlier error and
// always returns nil.
func (r *PipeReader) CloseWithError(err error) error {
	r.p.closeRead(err)
	return nil
}

// closeRead is the reader's close, shared with abandon.
func (pp *pipe) closeRead(err error) {
	if err == nil {
		err = io.ErrClosedPipe
	}
	pp.mu.Lock()
	if !pp.rclosed {
		pp.rclosed, pp.rerr = true, err
		pp.c.reset()
		pp.c.pool.sema.Abort(pp, err)
	}
	pp.mu.Unlock()
	pp.space.Wake()
	pp.data.Wake() // readers parked on data now fail
}
