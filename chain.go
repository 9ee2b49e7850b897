package bytespool

// This file holds the chain: the FIFO of blocks behind a Bytes. The chain
// does no locking of its own; the Bytes' mutex guards every method.

// A link is the chain bookkeeping of one block, kept by the pool beside the
// block (see slabLists): the block's unread bytes are [off, end), and next
// is the block after it in its chain. Only the holder of the block reads or
// writes its link; the free rings that pass a block from one holder to the
// next order the two holders' accesses, as they do for the block's bytes.
type link struct {
	next, off, end uint32
}

// blockList is a list of blocks strung together by their links: head, then
// link(head).next, and so on, blocks times, ending at tail, whose link is
// last. head, tail and last are meaningful only when blocks > 0.
//
// Its methods take the links they need from the caller, who has looked
// them up anyway, and are small enough to inline into the loops that call
// them once per block.
type blockList struct {
	last       *link // first: the pointer of a state leads it (see state)
	head, tail uint32
	blocks     int
}

// pop drops the first block, whose link is h, and returns it.
func (l *blockList) pop(h *link) uint32 {
	blk := l.head
	l.head = h.next
	l.blocks--
	return blk
}

// pushFront puts the blocks of front before those of l.
func (l *blockList) pushFront(front blockList) {
	switch {
	case front.blocks == 0:
		return
	case l.blocks == 0:
		l.tail, l.last = front.tail, front.last
	default:
		front.last.next = l.head
	}
	l.head = front.head
	l.blocks += front.blocks
}

// pushBack puts the blocks of back after those of l.
func (l *blockList) pushBack(back blockList) {
	switch {
	case back.blocks == 0:
		return
	case l.blocks == 0:
		l.head = back.head
	default:
		l.last.next = back.head
	}
	l.tail, l.last = back.tail, back.last
	l.blocks += back.blocks
}

// chain is the FIFO of blocks behind a Bytes, oldest first. Every block in
// the chain is held by it and goes back to the pool when the chain drops
// it. Usually every block but the first starts at its front and every block
// but the last is full to its end, so the last one's free tail ("room") is
// where the next write goes. Two things leave other blocks in the middle:
// a WriteTo that puts back what its writer did not take can leave one that
// is not full, and blocks adopted from another Bytes (see state.adopt) can
// follow one that is not full and start with one that starts past its
// front. Reads and WriteTo find runs of blocks with front, which ends a
// run at either.
//
// Invariants, under the owner's lock:
//   - n is the sum of end-off over the blocks of the chain;
//   - each block is in at most one chain, live or detached (see detachTo),
//     and a block in a chain is written only through that chain's room.
type chain struct {
	// The pointers first (see state).
	pool   *BytesPool // nil while the Bytes is free (see state)
	budget *Budget    // the budget its blocks count against; nil for a Bytes of the pool alone, and while the Bytes is free
	blockList
	shard int // the home shard of the pool's free rings (see allocator.slabs)
	n     int

	// outBytes and outBlocks count what a WriteTo has detached and is
	// writing with the lock released. Those bytes have left the chain
	// but still count against its limits until settle.
	outBytes, outBlocks int
}

// freer returns a freer that gives blocks back to the chain's pool and
// budget (see freer).
func (c *chain) freer() freer {
	return freer{a: &c.pool.allocator, shard: c.shard, hot: true, budget: c.budget}
}

// freeBlock gives block i, which the chain held, back to the pool and
// the budget.
func (c *chain) freeBlock(i uint32) {
	c.pool.freeBlock(i, c.shard)
	c.budget.release(1)
}

// tryGetBlock takes one block for the chain, reserved at every level, if
// it can be had without waiting. A Bytes of the pool alone pays one nil
// check here.
func (c *chain) tryGetBlock() (uint32, bool) {
	if c.budget != nil {
		return c.budget.tryGetBlock(c.shard)
	}
	return c.pool.tryGetBlock(c.shard)
}

// tryReserve reserves n blocks for the chain at every level, if they can
// be had without waiting.
func (c *chain) tryReserve(n int) bool {
	if c.budget != nil {
		return c.budget.tryReserve(n, c.shard)
	}
	return c.pool.tryReserve(n, c.shard)
}

// limit returns the most blocks the chain can ever hold: the smallest cap
// on its path to the pool.
func (c *chain) limit() int {
	if c.budget != nil {
		return c.budget.limit
	}
	return c.pool.capacity
}

// tooBig reports whether holding n blocks at once is beyond the smallest
// cap on the chain's path.
func (c *chain) tooBig(n int) bool { return n > c.limit() }

// abortOver makes the queued writers of owner, at every level of the
// chain, that asked for more than max blocks return err.
func (c *chain) abortOver(owner any, max int, err error) {
	c.pool.abortOver(owner, max, err)
	c.budget.abortOver(owner, max, err)
}

// held returns the number of blocks the chain holds, in it or in flight.
func (c *chain) held() int { return c.blocks + c.outBlocks }

// size returns the number of bytes the chain holds, in it or in flight.
func (c *chain) size() int { return c.n + c.outBytes }

// room returns how many bytes fit in the last block without a new one.
func (c *chain) room() int {
	if c.blocks == 0 {
		return 0
	}
	return c.pool.blockSize - int(c.last.end)
}

// need returns the number of new blocks that n more bytes need.
func (c *chain) need(n int) int {
	if r := c.room(); n > r {
		return c.pool.blocksFor(n - r)
	}
	return 0
}

// pushRun appends the run of len(links) blocks from first on, which
// follow each other in the arena and whose links are links, holding k
// bytes from the front of the first: every block but the last is full, and
// the last holds at least one byte.
func (c *chain) pushRun(first uint32, links []link, k int) {
	bs := c.pool.blockSize
	last := len(links) - 1
	for j := range links[:last] {
		links[j] = link{next: first + uint32(j) + 1, end: uint32(bs)}
	}
	links[last] = link{next: noBlock, end: uint32(k - last*bs)}
	if c.blocks == 0 {
		c.head = first
	} else {
		c.last.next = first
	}
	c.tail, c.last = first+uint32(last), &links[last]
	c.blocks += len(links)
	c.n += k
}

// write appends p. The caller has reserved exactly c.need(len(p)) blocks in
// the pool's semaphore and passes that number as fresh.
func write[T bytesOrString](c *chain, p T, fresh int) {
	p = fillRoom(c, p)
	var idx [16]uint32
	for fresh > 0 {
		batch := idx[:min(fresh, len(idx))]
		c.pool.getBlocks(batch, c.shard)
		fresh -= len(batch)
		p = fillBlocks(c, p, batch)
	}
}

// writeBlock appends p, which needs exactly one new block: blk, which the
// caller holds with its reservation.
//
// When the chain is empty, as that of a Bytes carrying one small message
// at a time mostly is, p (which fits in one block) goes into blk alone:
// one copy and one link, without the room and run machinery that every
// message would otherwise pay for (readOnly is the read's counterpart).
func writeBlock[T bytesOrString](c *chain, p T, blk uint32) {
	if c.blocks == 0 {
		mem, links := c.pool.span(blk)
		links[0] = link{next: noBlock, end: uint32(copy(mem[:c.pool.blockSize], p))}
		c.blockList = blockList{head: blk, tail: blk, last: &links[0], blocks: 1}
		c.n = len(p)
		return
	}
	one := [1]uint32{blk}
	fillBlocks(c, fillRoom(c, p), one[:])
}

// fillBlocks copies the head of p into blocks, fresh blocks that the caller
// holds, appends them to the chain and returns the rest of p. Every block
// gets at least one byte.
func fillBlocks[T bytesOrString](c *chain, p T, blocks []uint32) T {
	bs := c.pool.blockSize
	for len(blocks) > 0 {
		// Blocks that follow each other in the arena, as a ring hands
		// out blocks carved or freed in order, take their bytes in one
		// copy: one large memmove costs less than one per block.
		mem, links := c.pool.span(blocks[0])
		run := 1
		for run < len(blocks) && blocks[run] == blocks[0]+uint32(run) && run < len(links) {
			run++
		}
		k := copy(mem[:run*bs], p)
		p = p[k:]
		c.pushRun(blocks[0], links[:run], k)
		blocks = blocks[run:]
	}
	return p
}

// fillRoom copies the head of p into the room of the last block and returns
// the rest of p.
func fillRoom[T bytesOrString](c *chain, p T) T {
	if c.room() == 0 || len(p) == 0 {
		return p
	}
	k := copy(c.pool.block(c.tail)[c.last.end:], p)
	c.last.end += uint32(k)
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
	data, links := c.pool.span(blk)
	rest := fillRoom(c, data[:n])
	if len(rest) == 0 {
		return false
	}
	c.pushRun(blk, links[:1], copy(data, rest)) // the copy is a no-op when the last block had no room
	return true
}

// read moves the oldest unread bytes into p, drops the blocks it empties
// and returns them to the pool.
func (c *chain) read(p []byte) int {
	if c.blocks == 1 && len(p) >= c.n {
		return c.readOnly(p)
	}
	n := 0
	f := c.freer()
	for n < len(p) && c.blocks > 0 {
		src, links := c.pool.front(c.head, c.blocks, len(p)-n)
		k := copy(p[n:], src)
		c.n -= k
		n += k
		c.drop(links, k, &f)
	}
	f.done()
	return n
}

// readOnly is read for a chain of one block whose bytes p takes whole:
// one copy, and the block goes straight back. The block is also the
// chain's last, so its link is c.last: no lookup, no run, no freer.
func (c *chain) readOnly(p []byte) int {
	blk, h := c.head, c.last
	k := copy(p, c.pool.block(blk)[h.off:h.end])
	c.blockList, c.n = blockList{}, 0
	c.freeBlock(blk)
	return k
}

// drop consumes the first k unread bytes of the run at the front of l,
// whose links are links (see BytesPool.front): it pops the blocks that
// this empties and adds them to f as one run, and moves the front of the
// block where it stops.
func (l *blockList) drop(links []link, k int, f *freer) {
	// o is where the consumed bytes end, counted from the start of the
	// head block; all but the last block of the run end at their
	// block's end. The run's blocks are l.head and the ones after it.
	o := int(links[0].off) + k
	full := 0
	for full < len(links) && o >= int(links[full].end) {
		o -= f.a.blockSize
		full++
	}
	if full > 0 {
		f.addRun(l.head, full)
		l.head = links[full-1].next
		l.blocks -= full
	}
	if full < len(links) {
		links[full].off = uint32(o)
	}
}

// front returns the run at the front of a block list that starts at block
// head and holds the given number of blocks: the unread bytes that lie back
// to back in the arena from head on, and the links of the blocks they span.
// Those are head, and the blocks after it while each is the next block of
// the same slab, starts at its front and follows a block full to its end,
// as blocks written in one run are. It stops adding blocks once it has
// want bytes. The bytes' capacity ends where they do, so that a caller's
// io.Writer that appends to them cannot write into the next block.
func (p *BytesPool) front(head uint32, blocks, want int) ([]byte, []link) {
	bs := p.blockSize
	mem, links := p.span(head)
	h := &links[0]
	end, run := int(h.end), 1 // mem[h.off:end] is the run's bytes
	for end == run*bs && end-int(h.off) < want && run < blocks && run < len(links) {
		if links[run-1].next != head+uint32(run) || links[run].off != 0 {
			break
		}
		end += int(links[run].end)
		run++
	}
	return mem[h.off:end:end], links[:run]
}

// readByte removes and returns the oldest unread byte; the chain must not
// be empty.
func (c *chain) readByte() byte {
	h := c.pool.link(c.head)
	v := c.pool.block(c.head)[h.off]
	h.off++
	c.n--
	if h.off == h.end {
		c.freeBlock(c.pop(h))
	}
	return v
}

// reset drops every block.
func (c *chain) reset() {
	if c.blocks > 0 { // none, as after reading everything: no freer to build
		f := c.freer()
		f.addList(&c.blockList)
		f.done()
	}
	c.n = 0
}

// release returns the reservations, at every level, of n blocks the chain
// did not take.
func (c *chain) release(n int) {
	if n > 0 {
		c.pool.release(n, c.shard)
		c.budget.release(n)
	}
}

// detachTo moves every block of the chain into sc and points sc.bufs at
// their unread bytes, one buffer per run of blocks that lie back to back in
// the arena. The blocks' links stay as they are, and nobody else touches
// them until settle.
func (c *chain) detachTo(sc *writeToScratch) {
	sc.blockList = c.blockList
	sc.bufs = sc.bufs[:0]
	for blk, left := c.head, c.blocks; left > 0; {
		src, links := c.pool.front(blk, left, c.n)
		sc.bufs = append(sc.bufs, src)
		left -= len(links)
		blk = links[len(links)-1].next
	}
	c.outBytes += c.n
	c.outBlocks += c.blocks
	c.n, c.blockList = 0, blockList{}
}

// settle finishes a write of the blocks of pool p and budget bg detached
// into sc, of which the writer took the first n bytes: it frees the blocks taken in
// full, and puts the rest back in front of the chain if keep is set, or
// frees them too (the owner was closed meanwhile: its counters were reset,
// and c may be the chain of the header's next owner). It returns the
// number of bytes left unwritten.
func (c *chain) settle(p *BytesPool, bg *Budget, sc *writeToScratch, n int64, keep bool) int {
	if keep {
		c.stopCounting(sc)
	}
	f := freer{a: &p.allocator, shard: c.shard, hot: true, budget: bg}
	left := 0
	for i, b := range sc.bufs {
		took := int(min(n, int64(len(b))))
		// The links are as detachTo left them, so front finds b's run
		// again: the same blocks, ending where b does.
		_, links := p.front(sc.head, sc.blocks, len(b))
		sc.drop(links, took, &f)
		if took < len(b) { // w stopped in this run
			for _, b := range sc.bufs[i:] {
				left += len(b)
			}
			left -= took
			break
		}
		n -= int64(took)
	}
	if keep {
		// Put the rest back in front of what was written meanwhile.
		c.pushFront(sc.blockList)
		c.n += left
	} else {
		f.addList(&sc.blockList)
	}
	f.done()
	sc.forget()
	return left
}

// handOver finishes a write of the blocks detached into sc that went over
// whole to another chain (see state.adopt): they no longer count against
// c, if keep is set (see settle), and sc forgets them.
func (c *chain) handOver(sc *writeToScratch, keep bool) {
	if keep {
		c.stopCounting(sc)
	}
	sc.forget()
}

// stopCounting stops counting the bytes and blocks detached into sc
// against c: they have gone to the pool, to another chain, or back into c.
func (c *chain) stopCounting(sc *writeToScratch) {
	for _, b := range sc.bufs {
		c.outBytes -= len(b)
	}
	c.outBlocks -= sc.blocks
}
