package bytespool

import (
	"fmt"
	"io"
	"net"
	"sync"
)

// This file holds the chain: the FIFO of block extents behind a Bytes. The
// chain does no locking of its own; the Bytes' mutex guards
// every method.

// noBlock is the block index that names no block.
const noBlock = ^uint32(0)

// extent is the unread part of one block: bytes [off, end) of block blk.
type extent struct {
	blk, off, end uint32
}

// chain is a FIFO of extents, oldest first. The extents in ext[first:] are
// live; every block they name is held by the chain and goes back to the pool
// when its extent is dropped. All extents are full to the end of their block
// except the last one, whose free tail ("room") the next write fills, and
// the first extent may start past the front of its block.
//
// Invariants, under the owner's lock:
//   - n is the sum of end-off over the live extents;
//   - each block appears in at most one extent, live or detached, and a
//     block in an extent is written only through that extent's room.
type chain struct {
	pool  *BytesPool
	shard int // the home shard of the pool's free rings (see BytesPool.rings)
	ext   []extent
	first int
	n     int

	// outBytes and outBlocks count what a WriteTo has detached and is
	// writing with the lock released. Those bytes have left the chain
	// but still count against its limits until settle.
	outBytes, outBlocks int
}

// held returns the number of blocks the chain holds, in it or in flight.
func (c *chain) held() int { return len(c.ext) - c.first + c.outBlocks }

// size returns the number of bytes the chain holds, in it or in flight.
func (c *chain) size() int { return c.n + c.outBytes }

// room returns how many bytes fit in the last block without a new one.
func (c *chain) room() int {
	if c.first == len(c.ext) {
		return 0
	}
	return c.pool.blockSize - int(c.ext[len(c.ext)-1].end)
}

// need returns the number of new blocks that n more bytes need.
func (c *chain) need(n int) int {
	if r := c.room(); n > r {
		return c.pool.blocksFor(n - r)
	}
	return 0
}

// push appends e.
func (c *chain) push(e extent) {
	if len(c.ext) == cap(c.ext) && c.first > 0 {
		// Slide the live extents down instead of growing: a chain that
		// is drained as fast as it is filled keeps its array.
		c.ext = c.ext[:copy(c.ext, c.ext[c.first:])]
		c.first = 0
	}
	c.ext = append(c.ext, e)
	c.n += int(e.end - e.off)
}

// bytesOrString is what the write paths copy from.
type bytesOrString interface{ ~[]byte | ~string }

// write appends p. The caller has reserved exactly c.need(len(p)) blocks in
// the pool's semaphore and passes that number as fresh.
func write[T bytesOrString](c *chain, p T, fresh int) {
	p = fillRoom(c, p)
	var idx [16]uint32
	for fresh > 0 {
		batch := idx[:min(fresh, len(idx))]
		c.pool.getBlocks(batch, c.shard)
		for _, i := range batch {
			k := copy(c.pool.arena.Block(i), p)
			c.push(extent{blk: i, end: uint32(k)})
			p = p[k:]
		}
		fresh -= len(batch)
	}
}

// fillRoom copies the head of p into the room of the last block and returns
// the rest of p.
func fillRoom[T bytesOrString](c *chain, p T) T {
	if c.room() == 0 || len(p) == 0 {
		return p
	}
	t := &c.ext[len(c.ext)-1]
	k := copy(c.pool.arena.Block(t.blk)[t.end:], p)
	t.end += uint32(k)
	c.n += k
	return p[k:]
}

// appendBlock adds bytes [0, n) of block blk, which the caller holds and
// filled without the lock: the bytes that fit in the room of the last block
// are copied there, and blk joins the chain holding the rest, moved to the
// front of blk so that every block but the first and the last stays full
// (short reads must not spread data thinly over many blocks). It reports
// whether blk joined; if not, all n bytes were copied and the caller still
// holds blk.
func (c *chain) appendBlock(blk uint32, n int) bool {
	data := c.pool.arena.Block(blk)
	rest := fillRoom(c, data[:n])
	if len(rest) == 0 {
		return false
	}
	k := copy(data, rest) // no-op when the last block had no room
	c.push(extent{blk: blk, end: uint32(k)})
	return true
}

// readBlock is one read of a ReadFrom: up to limit bytes from r into the
// front of block blk, which the caller holds outside the chain. The owner's
// lock mu is held on entry and on return, and released during r.Read, so
// that a slow source holds up nobody. A reader that returns a count outside
// [0, limit] breaks the io.Reader contract: blk goes back to the pool and
// readBlock panics, as bytes.Buffer.ReadFrom does.
func (c *chain) readBlock(mu *sync.Mutex, r io.Reader, blk uint32, limit int) (int, error) {
	mu.Unlock()
	n, err := r.Read(c.pool.arena.Block(blk)[:limit])
	mu.Lock()
	if n < 0 || n > limit {
		c.pool.freeBlock(blk, c.shard)
		mu.Unlock()
		panic(fmt.Sprintf("bytespool: ReadFrom: reader returned count %d for a buffer of %d bytes", n, limit))
	}
	return n, err
}

// read moves the oldest unread bytes into p, drops the extents it empties
// and returns their blocks to the pool.
func (c *chain) read(p []byte) int {
	n := 0
	f := freer{pool: c.pool, shard: c.shard}
	for n < len(p) && c.first < len(c.ext) {
		e := &c.ext[c.first]
		k := copy(p[n:], c.pool.arena.Block(e.blk)[e.off:e.end])
		e.off += uint32(k)
		c.n -= k
		n += k
		if e.off == e.end {
			f.add(e.blk)
			c.first++
		}
	}
	c.compact()
	f.done()
	return n
}

// readByte removes and returns the oldest unread byte; the chain must not
// be empty.
func (c *chain) readByte() byte {
	e := &c.ext[c.first]
	v := c.pool.arena.Block(e.blk)[e.off]
	e.off++
	c.n--
	if e.off == e.end {
		c.pool.freeBlock(e.blk, c.shard)
		c.first++
		c.compact()
	}
	return v
}

// compact forgets the dropped prefix once nothing is live, so that an empty
// chain starts again at the front of its array.
func (c *chain) compact() {
	if c.first == len(c.ext) {
		c.ext = c.ext[:0]
		c.first = 0
	}
}

// reset drops every extent.
func (c *chain) reset() {
	f := freer{pool: c.pool, shard: c.shard}
	for _, e := range c.ext[c.first:] {
		f.add(e.blk)
	}
	f.done()
	c.ext = c.ext[:0]
	c.first = 0
	c.n = 0
}

// release returns the reservations of n blocks already pushed to the rings.
func (c *chain) release(n int) {
	if n > 0 {
		c.pool.sema.Release(uint64(n), c.shard)
	}
}

// prepend puts es back in front of the live extents, in order.
func (c *chain) prepend(es []extent) {
	if len(es) == 0 {
		return
	}
	live := len(c.ext) - c.first
	if c.first >= len(es) {
		c.first -= len(es)
		copy(c.ext[c.first:], es)
	} else {
		need := len(es) + live
		if cap(c.ext) < need {
			grown := make([]extent, need, need+need/2)
			copy(grown[len(es):], c.ext[c.first:])
			c.ext = grown
		} else {
			c.ext = c.ext[:need]
			copy(c.ext[len(es):], c.ext[c.first:c.first+live])
		}
		copy(c.ext, es)
		c.first = 0
	}
	for _, e := range es {
		c.n += int(e.end - e.off)
	}
}

// writeToScratch is what WriteTo reuses between calls: the detached extents
// and the buffers that point into their blocks. It lives on the heap so that
// (*net.Buffers).WriteTo does not make the slice header escape per call.
type writeToScratch struct {
	out  []extent
	bufs [][]byte    // the unread bytes of out, one slice per extent
	vec  net.Buffers // bufs as handed to a net.Conn, which consumes it
}

// takeScratch takes the scratch parked at *slot, or makes one if another
// WriteTo has it; give it back with *slot = sc, under the same lock.
func takeScratch(slot **writeToScratch) *writeToScratch {
	sc := *slot
	*slot = nil
	if sc == nil {
		sc = new(writeToScratch)
	}
	return sc
}

// detachTo moves the live extents into sc.out and points sc.bufs at their
// unread bytes.
func (c *chain) detachTo(sc *writeToScratch) {
	end := len(c.ext)
	sc.out = append(sc.out[:0], c.ext[c.first:end]...)
	sc.bufs = sc.bufs[:0]
	for _, e := range sc.out {
		sc.bufs = append(sc.bufs, c.pool.arena.Block(e.blk)[e.off:e.end])
		c.n -= int(e.end - e.off)
		c.outBytes += int(e.end - e.off)
	}
	c.outBlocks += len(sc.out)
	c.first = end
	c.compact()
}

// writeOut writes sc.bufs to w. A net.Conn gets them all in one writev
// through net.Buffers; any other writer gets one Write per block, and a
// short write without an error stops it with io.ErrShortWrite (net.Buffers
// would go on to the next block and leave a hole in the stream).
func writeOut(w io.Writer, sc *writeToScratch) (int64, error) {
	if _, ok := w.(net.Conn); ok {
		sc.vec = sc.bufs
		return sc.vec.WriteTo(w)
	}
	var n int64
	for _, b := range sc.bufs {
		k, err := w.Write(b)
		n += int64(k)
		if err != nil {
			return n, err
		}
		if k != len(b) {
			return n, io.ErrShortWrite
		}
	}
	return n, nil
}

// settle finishes a write of the extents detached into sc, of which the
// writer took the first n bytes: it frees the blocks taken in full, and puts
// the rest back in front of the chain if keep is set, or frees them too (the
// owner was closed meanwhile, and its counters reset). It returns the number
// of bytes left unwritten.
func (c *chain) settle(sc *writeToScratch, n int64, keep bool) int {
	detached := 0
	for _, e := range sc.out {
		detached += int(e.end - e.off)
	}
	f := freer{pool: c.pool, shard: c.shard}
	rest := sc.out
	for len(rest) > 0 && n >= int64(rest[0].end-rest[0].off) {
		n -= int64(rest[0].end - rest[0].off)
		f.add(rest[0].blk)
		rest = rest[1:]
	}
	if len(rest) > 0 {
		rest[0].off += uint32(n) // n < the length of rest[0] here
	}
	if keep {
		c.outBytes -= detached
		c.outBlocks -= len(sc.out)
		c.prepend(rest)
	} else {
		for _, e := range rest {
			f.add(e.blk)
		}
	}
	f.done()
	clear(sc.bufs) // drop the references into the arena
	left := 0
	for _, e := range rest {
		left += int(e.end - e.off)
	}
	return left
}
