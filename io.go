package bytespool

// This file holds what the Bytes and the pipe share at their edges: the
// index that names no block, the types the write paths copy from, the
// buffers through which both WriteTos hand arena memory to an io.Writer,
// and the checks of the counts that a caller's io.Reader or io.Writer
// returns, which both trust only after checking.

import (
	"errors"
	"fmt"
	"io"
	"net"
)

// noBlock is the block index that names no block.
const noBlock = ^uint32(0)

// bytesOrString is what the write paths copy from.
type bytesOrString interface{ ~[]byte | ~string }

// writeToScratch is a WriteTo's view of the blocks it detached from the
// chain, and the buffers that point into them. WriteTo reuses it between
// calls; it lives on the heap so that (*net.Buffers).WriteTo does not make
// the slice header escape per call.
type writeToScratch struct {
	blockList
	bufs [][]byte    // the unread bytes of the detached blocks, in order, one buffer per run (see BytesPool.front)
	vecs [][]byte    // a copy of bufs for a net.Conn (see writeOut)
	vec  net.Buffers // vecs as handed to the net.Conn, which consumes it
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

// forget drops sc's references into the arena and the links, so that a
// scratch kept by a freed header holds on to nothing of the pool.
func (sc *writeToScratch) forget() {
	clear(sc.bufs)
	sc.blockList = blockList{}
}

// writeOut writes sc.bufs to w and returns how many of their bytes w took,
// leaving sc.bufs as they were. Every buffer has cap == len (see front).
//
// A TCP or Unix connection gets them all in one writev through
// net.Buffers, which consumes the slice it writes (it sets the buffers it
// wrote to nil and cuts the one it stopped in), so it gets a copy. Only
// the net package's own connections are written that way: for any other
// writer, a net.Conn wrapper included, net.Buffers calls Write once per
// buffer and moves on after a short write, leaving a hole in the stream.
// Any other writer gets one Write per buffer here instead. Every count a
// writer returns is checked before it is used: a short write without an
// error stops with io.ErrShortWrite, and a count outside [0, len(buffer)],
// which breaks the io.Writer contract, with errInvalidWrite, counting none
// of that buffer as taken, as io.Copy does.
func writeOut(w io.Writer, sc *writeToScratch) (int64, error) {
	switch w.(type) {
	case *net.TCPConn, *net.UnixConn:
		var total int64
		for _, b := range sc.bufs {
			total += int64(len(b))
		}
		sc.vecs = append(sc.vecs[:0], sc.bufs...)
		sc.vec = sc.vecs
		n, err := sc.vec.WriteTo(w)
		clear(sc.vecs) // drop the references into the arena
		sc.vec = nil
		switch {
		case n < 0 || n > total:
			return 0, errInvalidWrite
		case n < total && err == nil:
			err = io.ErrShortWrite
		}
		return n, err
	}
	var n int64
	for _, b := range sc.bufs {
		k, err := w.Write(b)
		if k < 0 || k > len(b) {
			return n, errInvalidWrite
		}
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

// errInvalidWrite is WriteTo's error for a writer that returned a count
// outside [0, len(p)] from Write(p).
var errInvalidWrite = errors.New("bytespool: WriteTo: invalid count returned by the writer's Write")

// checkReadCount panics, as bytes.Buffer.ReadFrom does, if a reader
// returned a count outside [0, limit] for a buffer of limit bytes, which
// breaks the io.Reader contract. The ReadFroms of Bytes and pipes share it.
func checkReadCount(n, limit int) {
	if n < 0 || n > limit {
		panic(fmt.Sprintf("bytespool: ReadFrom: reader returned count %d for a buffer of %d bytes", n, limit))
	}
}

// drained reports whether r says it has nothing left to read, which only a
// reader with a Len method can say without being read.
func drained(r io.Reader) bool {
	l, ok := r.(interface{ Len() int })
	return ok && l.Len() == 0
}
