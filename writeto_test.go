package bytespool

import (
	"bytes"
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of the io.Writers that WriteTo hands arena memory to (Bytes.WriteTo
// and PipeReader.WriteTo): every slice they get ends where its bytes end,
// and every count they return is checked before it moves a position.

// appendingWriter appends a byte to every slice it is given, as some
// framers and loggers do with the slice they are handed, and records
// whether each slice had cap == len.
type appendingWriter struct {
	buf    bytes.Buffer
	capped bool // every slice so far had cap == len
	calls  int
}

func (w *appendingWriter) Write(p []byte) (int, error) {
	w.calls++
	if cap(p) != len(p) {
		w.capped = false
	}
	//lint:ignore SA1023 the test breaks the contract on purpose, as a careless framer would
	_ = append(p, '!') // writes into the arena if cap(p) > len(p)
	return w.buf.Write(p)
}

// fakeConn is a net.Conn whose Write is w's; the other methods are never
// called. It stands for a net.Conn wrapper (TLS, a metrics shim), which
// net.Buffers writes one buffer at a time.
type fakeConn struct {
	net.Conn
	w io.Writer
}

func (c fakeConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// poolsOnAndOff runs f on a pool of 8 blocks of bs bytes, with ZeroOnFree
// off and on.
func poolsOnAndOff(t *testing.T, bs int, f func(t *testing.T, p *BytesPool)) {
	for _, zero := range []bool{false, true} {
		name := "ZeroOnFree=false"
		if zero {
			name = "ZeroOnFree=true"
		}
		t.Run(name, func(t *testing.T) {
			p, err := New(Config{MaxMemory: 8 * bs, BlockSize: bs, ZeroOnFree: zero})
			require.NoError(t, err)
			checkNoLeak(t, p)
			f(t, p)
		})
	}
}

// A writer that appends to the slice it gets must not reach the next block
// of the arena, which here holds another Bytes' data.
func TestWriteToSlicesEndAtTheirBytes(t *testing.T) {
	const bs = 64
	for _, conn := range []bool{false, true} {
		name := "plain writer"
		if conn {
			name = "net.Conn wrapper"
		}
		t.Run(name, func(t *testing.T) {
			poolsOnAndOff(t, bs, func(t *testing.T, p *BytesPool) {
				a := p.NewBytes(0)
				defer a.Free()
				other := p.NewBytes(0)
				defer other.Free()
				data := fill(2*bs, 1) // two full blocks: their end is the next block's start
				writeAll(t, a, data)
				theirs := fill(bs, 2)
				writeAll(t, other, theirs)

				aw := &appendingWriter{capped: true}
				var w io.Writer = aw
				if conn {
					w = fakeConn{w: aw}
				}
				n, err := a.WriteTo(w)
				require.NoError(t, err)
				assert.Equal(t, int64(len(data)), n)
				assert.Equal(t, data, aw.buf.Bytes())
				assert.True(t, aw.capped, "WriteTo handed out a slice with cap > len")
				assert.Equal(t, theirs, readAll(t, other), "the other Bytes' data changed")
			})
		})
	}
}

func TestPipeWriteToSlicesEndAtTheirBytes(t *testing.T) {
	const bs = 64
	for _, conn := range []bool{false, true} {
		name := "plain writer"
		if conn {
			name = "net.Conn wrapper"
		}
		t.Run(name, func(t *testing.T) {
			poolsOnAndOff(t, bs, func(t *testing.T, p *BytesPool) {
				other := p.NewBytes(0)
				defer other.Free()
				r, w := p.NewPipe(0)
				data := fill(3*bs, 3) // three full blocks
				n, err := w.Write(data)
				require.NoError(t, err)
				require.Equal(t, len(data), n)
				theirs := fill(bs, 4)
				writeAll(t, other, theirs) // the block after the pipe's
				require.NoError(t, w.Close())

				aw := &appendingWriter{capped: true}
				var dst io.Writer = aw
				if conn {
					dst = fakeConn{w: aw}
				}
				got, err := r.WriteTo(dst)
				require.NoError(t, err)
				assert.Equal(t, int64(len(data)), got)
				assert.Equal(t, data, aw.buf.Bytes())
				assert.True(t, aw.capped, "WriteTo handed out a slice with cap > len")
				assert.Equal(t, theirs, readAll(t, other), "the other Bytes' data changed")
				require.NoError(t, r.Close())
			})
		})
	}
}

// countWriter takes the bytes it is given but reports count(len(p)): a
// writer that breaks the io.Writer contract.
type countWriter struct {
	buf   bytes.Buffer
	count func(n int) int
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	return w.count(len(p)), nil
}

// Counts a writer returns are checked before they move anything: a count
// outside [0, len(p)] is errInvalidWrite with none of that p taken, and a
// short count without an error is io.ErrShortWrite with the rest kept, for
// plain writers and net.Conn wrappers alike (net.Buffers would move on to
// the next buffer and leave a hole).
func TestWriteToChecksCounts(t *testing.T) {
	const bs = 64
	for _, c := range []struct {
		name  string
		count func(n int) int
		err   error
		took  int // of the 327 bytes below, in buffers of 2*bs, bs... as front cuts them
	}{
		{"too many", func(n int) int { return n + 2560 }, errInvalidWrite, 0},
		{"negative", func(n int) int { return -1 }, errInvalidWrite, 0},
		{"short", func(n int) int { return n / 2 }, io.ErrShortWrite, -1},
	} {
		for _, conn := range []bool{false, true} {
			name := c.name
			if conn {
				name += ", net.Conn wrapper"
			}
			t.Run(name, func(t *testing.T) {
				poolsOnAndOff(t, bs, func(t *testing.T, p *BytesPool) {
					b := p.NewBytes(0)
					defer b.Free()
					data := fill(327, 5)
					writeAll(t, b, data)
					cw := &countWriter{count: c.count}
					var w io.Writer = cw
					if conn {
						w = fakeConn{w: cw}
					}
					n, err := b.WriteTo(w)
					require.ErrorIs(t, err, c.err)
					took := c.took
					if took < 0 {
						took = cw.buf.Len() / 2 // the first buffer, half taken
					}
					assert.Equal(t, int64(took), n)
					assert.Equal(t, len(data)-took, b.Len(), "what w did not take stays in b")
					assert.Equal(t, data[took:], readAll(t, b))
				})
			})
		}
	}
}

// The same for a pipe: a count out of range ends WriteTo with an error at
// once, without waiting for the pipe's writer, and leaves the pipe's
// positions where they were (before the fix, the read position passed the
// write position and the reader freed blocks the pipe did not own).
func TestPipeWriteToChecksCounts(t *testing.T) {
	const bs = 64
	for _, c := range []struct {
		name  string
		count func(n int) int
		err   error
	}{
		{"too many", func(n int) int { return n + 2560 }, errInvalidWrite},
		{"negative", func(n int) int { return -1 }, errInvalidWrite},
		{"short", func(n int) int { return n / 2 }, io.ErrShortWrite},
	} {
		for _, conn := range []bool{false, true} {
			name := c.name
			if conn {
				name += ", net.Conn wrapper"
			}
			t.Run(name, func(t *testing.T) {
				poolsOnAndOff(t, bs, func(t *testing.T, p *BytesPool) {
					r, pw := p.NewPipe(0)
					data := fill(327, 6)
					n, err := pw.Write(data)
					require.NoError(t, err)
					require.Equal(t, len(data), n)
					cw := &countWriter{count: c.count}
					var w io.Writer = cw
					if conn {
						w = fakeConn{w: cw}
					}
					var got int64
					within(t, "WriteTo into a writer that breaks its contract", func() {
						got, err = r.WriteTo(w) // the pipe's writer stays open
					})
					require.ErrorIs(t, err, c.err)
					took := 0
					if c.err == io.ErrShortWrite {
						took = cw.buf.Len() / 2
					}
					assert.Equal(t, int64(took), got)
					// The rest is still in the pipe, in order.
					require.NoError(t, pw.Close())
					rest, err := io.ReadAll(r)
					require.NoError(t, err)
					assert.Equal(t, data[took:], rest)
					require.NoError(t, r.Close())
				})
			})
		}
	}
}

// Two writes to one Bytes, each of 3 blocks, on a pool of 4: both are
// admitted while the Bytes is empty and queue for blocks; once the first
// is granted and written, the second can never be, since the Bytes holds 3
// of the 4 blocks. It must leave the queue with ErrPoolTooSmall rather than
// wait forever.
func TestConcurrentWritesPastThePoolFail(t *testing.T) {
	const bs = 64
	for _, zero := range []bool{false, true} {
		p, err := New(Config{MaxMemory: 4 * bs, BlockSize: bs, ZeroOnFree: zero})
		require.NoError(t, err)
		checkNoLeak(t, p)
		hog := p.NewBytes(0)
		writeAll(t, hog, fill(2*bs, 1)) // 2 of the 4 blocks
		b := p.NewBytes(0)
		first := fill(3*bs, 2)
		a := parkedWrite(t, p, b, first, 1)
		c := parkedWrite(t, p, b, fill(3*bs, 3), 2)
		hog.Free() // 4 free: the first write gets 3 of them

		ra := await(t, "the first write", a)
		rc := await(t, "the second write", c)
		require.NoError(t, ra.err)
		assert.Equal(t, int64(len(first)), ra.n)
		assert.ErrorIs(t, rc.err, ErrPoolTooSmall)
		assert.Equal(t, int64(0), rc.n)
		assert.Equal(t, 0, p.Stats().Waiters)
		assert.Equal(t, first, readAll(t, b), "the failed write wrote nothing")
		b.Free()
	}
}
