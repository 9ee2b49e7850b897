// Package kafka re-creates the design of the Kafka producer's BufferPool
// (org.apache.kafka.clients.producer.internals.BufferPool) in Go, as a
// capped benchmark peer of bytespool.
//
// The design: one mutex guards everything; free blocks of one size wait in
// a FIFO deque (Kafka's free ArrayDeque<ByteBuffer>: allocate polls the
// first, deallocate adds at the end); memory never carved into a block yet
// is a count (Kafka's nonPooledAvailableMemory), carved outside the lock;
// and goroutines that must wait queue up in a FIFO of waiters, each with
// a condition variable of its own on the pool's mutex (Kafka's
// Deque<Condition> waiters). A waiter that needs n blocks waits at its
// place in the queue; only the head of the queue takes memory, taking what
// there is as it comes (Kafka's accumulated) until it has all n; every
// deallocate signals the head, and a head that is done signals the next
// one if memory is left.
//
// Two differences from Kafka, both to match SPEC.md's contract for
// bytespool: a newcomer queues behind existing waiters even if the memory
// it needs is free (Kafka's fast paths let it take that memory; SPEC does
// not let a later small write overtake an earlier large one), and an
// allocation is a number of whole blocks rather than a byte size, since a
// buffer here is a chain of blocks. There is no timeout (Kafka's
// max.block.ms): the benchmarks never wait.
package kafka

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrPoolTooSmall is returned when an allocation needs more blocks than
// the pool can ever hold.
var ErrPoolTooSmall = errors.New("kafka: pool too small")

// A Pool hands out blocks of one size, up to a memory cap.
type Pool struct {
	mu        sync.Mutex
	blockSize int
	total     int // blocks the pool may hand out at once

	// free is a ring of free blocks, oldest first: free[head] on, n of them.
	free    [][]byte
	head, n int
	// unpooled counts the blocks that may still be carved (Kafka's
	// nonPooledAvailableMemory, in blocks).
	unpooled int

	// waiters is the FIFO of parked allocations, from waiters[wh] on.
	waiters []*waiter
	wh      int
	spare   []*waiter // waiters to reuse, so that a wait allocates once

	buffers sync.Pool // of *Buffer
}

// A waiter is one parked allocation: its own condition variable on the
// pool's mutex.
type waiter struct{ cond sync.Cond }

// NewPool returns a pool of blockSize-byte blocks that hands out at most
// maxMemory bytes. It panics on invalid sizes.
func NewPool(maxMemory, blockSize int) *Pool {
	if blockSize <= 0 || maxMemory < blockSize {
		panic(fmt.Sprintf("kafka: maxMemory %d, blockSize %d: invalid", maxMemory, blockSize))
	}
	total := maxMemory / blockSize
	p := &Pool{blockSize: blockSize, total: total, free: make([][]byte, total), unpooled: total}
	p.buffers.New = func() any { return &Buffer{pool: p} }
	return p
}

// Waiters returns the number of parked allocations.
func (p *Pool) Waiters() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters) - p.wh
}

// Allocate appends n blocks to dst and returns it. It waits, in arrival
// order, until n blocks are free; n larger than the pool is an error.
func (p *Pool) Allocate(dst [][]byte, n int) ([][]byte, error) {
	if n > p.total {
		return dst, ErrPoolTooSmall
	}
	carve := 0
	p.mu.Lock()
	if p.wh == len(p.waiters) && p.n+p.unpooled >= n {
		dst, carve = p.take(dst, n)
		p.mu.Unlock()
		return p.carve(dst, carve), nil
	}
	w := p.park()
	for got := 0; got < n; {
		if p.waiters[p.wh] == w && p.n+p.unpooled > 0 {
			var c int
			k := min(n-got, p.n+p.unpooled)
			dst, c = p.take(dst, k)
			carve += c
			got += k
			continue
		}
		w.cond.Wait()
	}
	p.waiters[p.wh] = nil
	if p.wh++; p.wh == len(p.waiters) {
		p.waiters, p.wh = p.waiters[:0], 0
	}
	p.spare = append(p.spare, w)
	if p.wh < len(p.waiters) && p.n+p.unpooled > 0 {
		p.waiters[p.wh].cond.Signal()
	}
	p.mu.Unlock()
	return p.carve(dst, carve), nil
}

// take appends k blocks from the free deque to dst, oldest first, and
// returns how many more must be carved. p.mu is held, and k <= p.n+p.unpooled.
func (p *Pool) take(dst [][]byte, k int) ([][]byte, int) {
	for ; k > 0 && p.n > 0; k-- {
		dst = append(dst, p.free[p.head])
		p.free[p.head] = nil
		if p.head++; p.head == len(p.free) {
			p.head = 0
		}
		p.n--
	}
	p.unpooled -= k
	return dst, k
}

// carve appends k new blocks to dst, outside the lock, as Kafka allocates
// its ByteBuffers.
func (p *Pool) carve(dst [][]byte, k int) [][]byte {
	for range k {
		dst = append(dst, make([]byte, p.blockSize))
	}
	return dst
}

// park queues a waiter at the tail. p.mu is held.
func (p *Pool) park() *waiter {
	var w *waiter
	if k := len(p.spare); k > 0 {
		w, p.spare = p.spare[k-1], p.spare[:k-1]
	} else {
		w = &waiter{}
		w.cond.L = &p.mu
	}
	if p.wh >= 64 && 2*p.wh >= len(p.waiters) { // compact the queue
		k := copy(p.waiters, p.waiters[p.wh:])
		clear(p.waiters[k:])
		p.waiters, p.wh = p.waiters[:k], 0
	}
	p.waiters = append(p.waiters, w)
	return w
}

// Deallocate puts blocks at the end of the free deque and signals the head
// waiter.
func (p *Pool) Deallocate(blocks [][]byte) {
	p.mu.Lock()
	for _, b := range blocks {
		p.free[(p.head+p.n)%len(p.free)] = b
		p.n++
	}
	if p.wh < len(p.waiters) {
		p.waiters[p.wh].cond.Signal()
	}
	p.mu.Unlock()
}

// A Buffer is a FIFO byte buffer made of pool blocks. Reading hands a block
// back as soon as it is read to its end. It is for one goroutine at a time.
type Buffer struct {
	pool   *Pool
	blocks [][]byte // held, oldest first, from blocks[h] on
	h      int
	r, w   int // read and write offsets into the bytes of blocks[h:]
}

// NewBuffer returns an empty Buffer; Free gives it back.
func (p *Pool) NewBuffer() *Buffer { return p.buffers.Get().(*Buffer) }

// Write appends src, first allocating every block it needs at once (all
// or wait).
func (b *Buffer) Write(src []byte) (int, error) {
	bs := b.pool.blockSize
	if need := (b.w+len(src)+bs-1)/bs - (len(b.blocks) - b.h); need > 0 {
		var err error
		if b.blocks, err = b.pool.Allocate(b.blocks, need); err != nil {
			return 0, err
		}
	}
	n := len(src)
	for len(src) > 0 {
		k := copy(b.blocks[b.h+b.w/bs][b.w%bs:], src)
		src = src[k:]
		b.w += k
	}
	return n, nil
}

// Read reads the oldest unread bytes into dst; on an empty Buffer it returns
// 0, io.EOF.
func (b *Buffer) Read(dst []byte) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		return 0, io.EOF
	}
	bs, n := b.pool.blockSize, 0
	for n < len(dst) && b.r < b.w {
		k := copy(dst[n:], b.blocks[b.h+b.r/bs][b.r%bs:min(bs, b.w-b.r/bs*bs)])
		n += k
		b.r += k
	}
	if b.r == b.w { // all read: every block goes back
		b.pool.Deallocate(b.blocks[b.h:])
		clear(b.blocks[b.h:])
		b.blocks, b.h, b.r, b.w = b.blocks[:0], 0, 0, 0
	} else if done := b.r / bs; done > 0 { // the blocks read to their end
		b.pool.Deallocate(b.blocks[b.h : b.h+done])
		clear(b.blocks[b.h : b.h+done])
		b.h += done
		b.r -= done * bs
		b.w -= done * bs
	}
	return n, nil
}

// Len returns the number of unread bytes.
func (b *Buffer) Len() int { return b.w - b.r }

// Free gives back every block and the Buffer itself; b must not be used
// afterwards.
func (b *Buffer) Free() {
	if b.h < len(b.blocks) {
		b.pool.Deallocate(b.blocks[b.h:])
		clear(b.blocks[b.h:])
	}
	b.blocks, b.h, b.r, b.w = b.blocks[:0], 0, 0, 0
	b.pool.buffers.Put(b)
}
