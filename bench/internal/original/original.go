// Package original re-creates the design of the seed bytespool (2023) as a
// benchmark peer, so that bench/ can show what the rewrite gained.
//
// The design: fixed-size segments come from a sync.Pool; the memory cap is a
// semaphore.Weighted holding one token per segment, acquired one at a time
// with context.TODO(); a Bytes is a container/list of segments under a
// mutex, and runtime.SetFinalizer frees a Bytes that was dropped.
//
// The original's defects that would break a benchmark are fixed: Free
// returns every segment (the original stopped after the first, leaking the
// other tokens) and a cap smaller than one segment is rejected instead of
// silently meaning "unlimited". The defects that only cost speed or
// fairness are kept on purpose, since they are part of what is measured:
// Write waits for tokens while holding the Bytes mutex, tokens are taken one
// by one, and every segment costs a list element allocation.
package original

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"golang.org/x/sync/semaphore"
)

var (
	// ErrBytesCapacityTooSmall is returned by Write when the data would
	// pass the Bytes' maximum length.
	ErrBytesCapacityTooSmall = errors.New("original: bytes capacity too small")
	// ErrPoolTooSmall is returned by Write when the data would pass the
	// pool's maximum memory.
	ErrPoolTooSmall = errors.New("original: pool too small")
)

// A Pool hands out segments of one size, up to a memory cap.
type Pool struct {
	segSize   int
	maxMemory int                 // 0: unlimited
	sem       *semaphore.Weighted // one token per segment; nil when unlimited
	segs      sync.Pool           // of *segment
}

// A segment is one block of a Bytes: buf[r:w] is unread.
type segment struct {
	buf  []byte
	r, w int
}

// NewPool returns a Pool of segmentSize-byte segments that hands out at most
// maxMemory bytes; maxMemory 0 means unlimited. It panics on invalid sizes.
func NewPool(maxMemory, segmentSize int) *Pool {
	if segmentSize <= 0 {
		panic(fmt.Sprintf("original: segmentSize %d <= 0", segmentSize))
	}
	if maxMemory < 0 || (maxMemory > 0 && maxMemory < segmentSize) {
		panic(fmt.Sprintf("original: maxMemory %d invalid for segmentSize %d", maxMemory, segmentSize))
	}
	p := &Pool{segSize: segmentSize, maxMemory: maxMemory}
	if maxMemory > 0 {
		p.sem = semaphore.NewWeighted(int64(maxMemory / segmentSize))
	}
	p.segs.New = func() any { return &segment{buf: make([]byte, segmentSize)} }
	return p
}

// get takes a token and a segment; it waits while the cap is reached.
func (p *Pool) get() (*segment, error) {
	if p.sem != nil {
		if err := p.sem.Acquire(context.TODO(), 1); err != nil {
			return nil, err
		}
	}
	s := p.segs.Get().(*segment)
	s.r, s.w = 0, 0
	return s, nil
}

// put gives back a segment and its token.
func (p *Pool) put(s *segment) {
	p.segs.Put(s)
	if p.sem != nil {
		p.sem.Release(1)
	}
}

// A Bytes is a FIFO byte buffer made of pool segments.
type Bytes struct {
	mu     sync.Mutex
	pool   *Pool
	segs   *list.List // of *segment, oldest first
	n      int        // unread bytes
	maxLen int        // 0: bounded by the pool only
}

// NewBytes returns an empty Bytes that holds at most maxLen bytes (0: bounded
// by the pool only).
func (p *Pool) NewBytes(maxLen int) *Bytes {
	b := &Bytes{pool: p, segs: list.New(), maxLen: maxLen}
	runtime.SetFinalizer(b, (*Bytes).Free)
	return b
}

// Write appends p, taking segments from the pool as needed. It waits for
// segments while holding the Bytes' lock, as the original did.
func (b *Bytes) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.maxLen > 0 && b.n+len(p) > b.maxLen {
		return 0, ErrBytesCapacityTooSmall
	}
	if b.pool.maxMemory > 0 && b.n+len(p) > b.pool.maxMemory {
		return 0, ErrPoolTooSmall
	}
	written := 0
	for written < len(p) {
		var s *segment
		if e := b.segs.Back(); e != nil {
			s = e.Value.(*segment)
		}
		if s == nil || s.w == len(s.buf) {
			var err error
			if s, err = b.pool.get(); err != nil {
				return written, err
			}
			b.segs.PushBack(s)
		}
		m := copy(s.buf[s.w:], p[written:])
		s.w += m
		b.n += m
		written += m
	}
	return written, nil
}

// Read reads the oldest unread bytes into p. A segment that is fully read
// goes back to the pool. On an empty Bytes Read returns 0, io.EOF.
func (b *Bytes) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if b.n == 0 {
		return 0, io.EOF
	}
	read := 0
	for read < len(p) && b.n > 0 {
		e := b.segs.Front()
		s := e.Value.(*segment)
		m := copy(p[read:], s.buf[s.r:s.w])
		s.r += m
		b.n -= m
		read += m
		if s.r == len(s.buf) {
			b.segs.Remove(e)
			b.pool.put(s)
		}
	}
	return read, nil
}

// Len returns the number of unread bytes.
func (b *Bytes) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Free returns every segment to the pool. The Bytes must not be used
// afterwards.
func (b *Bytes) Free() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for e := b.segs.Front(); e != nil; {
		next := e.Next() // list.Remove clears e.Next: the original's leak
		b.pool.put(b.segs.Remove(e).(*segment))
		e = next
	}
	b.n = 0
	runtime.SetFinalizer(b, nil)
}
