package bytespool

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/atomic"
)

// ---------------------------------------------------------------------------
// Round trip against a bytes.Buffer model

// nonNil maps nil to an empty slice, so that "no bytes" compares equal
// however it is represented.
func nonNil(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}

func randBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, (n+7)&^7)
	for i := 0; i < len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], rng.Uint64())
	}
	return p[:n]
}

func TestRoundTripAgainstModel(t *testing.T) {
	for _, bs := range []int{1, 7, 4096, 65536} {
		t.Run(fmt.Sprintf("blockSize=%d", bs), func(t *testing.T) {
			p := testPool(t, 0, bs)
			rng := rand.New(rand.NewPCG(uint64(bs), 7))
			maxIO := min(3*bs+100, 200_000)
			steps := 1500
			if bs >= 4096 {
				steps = 400
			}
			if testing.Short() {
				steps /= 5
			}
			b := p.NewBytes(0)
			defer b.Free()
			var model bytes.Buffer
			for step := range steps {
				op := rng.IntN(13)
				what := ""
				switch op {
				case 0, 1, 2:
					data := randBytes(rng, rng.IntN(maxIO+1))
					what = fmt.Sprintf("Write(%d)", len(data))
					n, err := b.Write(data)
					require.NoError(t, err, what)
					require.Equal(t, len(data), n, what)
					model.Write(data)
				case 3:
					data := randBytes(rng, rng.IntN(maxIO+1))
					what = fmt.Sprintf("WriteString(%d)", len(data))
					n, err := b.WriteString(string(data))
					require.NoError(t, err, what)
					require.Equal(t, len(data), n, what)
					model.Write(data)
				case 4:
					c := byte(rng.Uint32())
					what = "WriteByte"
					require.NoError(t, b.WriteByte(c))
					model.WriteByte(c)
				case 5, 6, 7:
					k := rng.IntN(maxIO + 1)
					what = fmt.Sprintf("Read(%d)", k)
					got, want := make([]byte, k), make([]byte, k)
					n, err := b.Read(got)
					wn, werr := model.Read(want)
					require.Equal(t, werr, err, what)
					require.Equal(t, wn, n, what)
					require.Equal(t, want[:wn], got[:n], what)
				case 8:
					what = "ReadByte"
					c, err := b.ReadByte()
					wc, werr := model.ReadByte()
					require.Equal(t, werr, err, what)
					require.Equal(t, wc, c, what)
				case 9:
					if rng.IntN(3) != 0 {
						continue // keep the buffer from being drained too often
					}
					what = "WriteTo(bytes.Buffer)"
					var out bytes.Buffer
					n, err := b.WriteTo(&out)
					require.NoError(t, err, what)
					require.Equal(t, int64(model.Len()), n, what)
					require.Equal(t, nonNil(model.Bytes()), nonNil(out.Bytes()), what)
					model.Reset()
				case 10, 11:
					data := randBytes(rng, rng.IntN(maxIO+1))
					var r io.Reader
					switch rng.IntN(5) {
					case 0:
						what, r = "bytes.Reader", bytes.NewReader(data)
					case 1:
						// One call per byte: keep it short, but long enough
						// to cross blocks of every size when b is not empty.
						data = data[:min(len(data), 20000)]
						what, r = "OneByteReader", iotest.OneByteReader(bytes.NewReader(data))
					case 2:
						what, r = "HalfReader", iotest.HalfReader(bytes.NewReader(data))
					case 3:
						what, r = "DataErrReader", iotest.DataErrReader(bytes.NewReader(data))
					case 4:
						what, r = "reader without Len", noLen{bytes.NewReader(data)}
					}
					what = fmt.Sprintf("ReadFrom(%s of %d)", what, len(data))
					n, err := b.ReadFrom(r)
					require.NoError(t, err, what)
					require.Equal(t, int64(len(data)), n, what)
					model.Write(data)
				case 12:
					if rng.IntN(4) != 0 {
						continue
					}
					what = "Reset"
					b.Reset()
					model.Reset()
				}
				require.Equal(t, model.Len(), b.Len(), "step %d: after %s", step, what)
				inUse := p.Stats().BlocksInUse
				if model.Len() == 0 {
					require.Equal(t, 0, inUse, "step %d: an empty Bytes holds no block (after %s)", step, what)
				} else {
					require.GreaterOrEqual(t, inUse, (model.Len()+bs-1)/bs, "step %d: after %s", step, what)
				}
			}
			require.Equal(t, nonNil(model.Bytes()), readAll(t, b))
			require.Equal(t, 0, p.Stats().BlocksInUse)
			b.Free()
			requireAllFree(t, p)
		})
	}
}

// ---------------------------------------------------------------------------
// Limits: exact fits and all-or-nothing errors

func TestMaxLenExactFit(t *testing.T) {
	p := testPool(t, 0, 16)
	for _, maxLen := range []int{1, 15, 16, 17, 100} {
		t.Run(fmt.Sprint(maxLen), func(t *testing.T) {
			data := fill(maxLen, 3)
			b := p.NewBytes(maxLen)
			defer b.Free()
			n, err := b.Write(data)
			require.NoError(t, err)
			require.Equal(t, maxLen, n)

			n, err = b.Write([]byte{1})
			assert.Equal(t, 0, n)
			assert.ErrorIs(t, err, ErrBytesCapacityTooSmall)
			n, err = b.WriteString("x")
			assert.Equal(t, 0, n)
			assert.ErrorIs(t, err, ErrBytesCapacityTooSmall)
			assert.ErrorIs(t, b.WriteByte(1), ErrBytesCapacityTooSmall)
			n, err = b.WriteContext(context.Background(), []byte{1})
			assert.Equal(t, 0, n)
			assert.ErrorIs(t, err, ErrBytesCapacityTooSmall)
			assert.Equal(t, maxLen, b.Len(), "a refused write leaves Len unchanged")

			// Reading one byte makes room for exactly one.
			c, err := b.ReadByte()
			require.NoError(t, err)
			assert.Equal(t, data[0], c)
			require.NoError(t, b.WriteByte(0xAB))
			assert.ErrorIs(t, b.WriteByte(0xCD), ErrBytesCapacityTooSmall)
			assert.Equal(t, append(append([]byte{}, data[1:]...), 0xAB), readAll(t, b))
		})
	}
}

func TestMaxLenAllOrNothing(t *testing.T) {
	p := testPool(t, 0, 16)
	b := p.NewBytes(100)
	defer b.Free()
	first := fill(60, 1)
	_, err := b.Write(first)
	require.NoError(t, err)
	n, err := b.Write(fill(41, 2))
	assert.Equal(t, 0, n, "nothing of a write past maxLen is written")
	assert.ErrorIs(t, err, ErrBytesCapacityTooSmall)
	assert.Equal(t, 60, b.Len())
	second := fill(40, 3)
	n, err = b.Write(second)
	require.NoError(t, err)
	assert.Equal(t, 40, n)
	assert.Equal(t, append(append([]byte{}, first...), second...), readAll(t, b))
}

func TestPoolExactFit(t *testing.T) {
	const bs, blocks = 16, 4
	p := testPool(t, blocks*bs, bs)

	t.Run("exactly N blocks", func(t *testing.T) {
		b := p.NewBytes(0)
		defer b.Free()
		data := fill(blocks*bs, 1)
		within(t, "a write of exactly the pool", func() {
			n, err := b.Write(data)
			assert.NoError(t, err)
			assert.Equal(t, len(data), n)
		})
		assert.Equal(t, blocks, p.Stats().BlocksInUse)
		assert.Equal(t, data, readAll(t, b))
	})

	t.Run("N blocks and one byte fails at once", func(t *testing.T) {
		// Even while another Bytes holds blocks, the answer is an error,
		// not a wait.
		h := p.NewBytes(0)
		defer h.Free()
		_, err := h.Write(fill(2*bs, 9))
		require.NoError(t, err)
		b := p.NewBytes(0)
		defer b.Free()
		var n int
		within(t, "a write larger than the pool", func() { n, err = b.Write(fill(blocks*bs+1, 1)) })
		assert.Equal(t, 0, n)
		assert.ErrorIs(t, err, ErrPoolTooSmall)
		within(t, "a string larger than the pool", func() { n, err = b.WriteString(strings.Repeat("x", blocks*bs+1)) })
		assert.Equal(t, 0, n)
		assert.ErrorIs(t, err, ErrPoolTooSmall)
		assert.Equal(t, 0, b.Len())
		assert.Equal(t, 0, p.Stats().Waiters)
		assert.Equal(t, 2, p.Stats().BlocksInUse)
	})

	t.Run("the room of the last block counts", func(t *testing.T) {
		b := p.NewBytes(0)
		defer b.Free()
		_, err := b.Write(fill(blocks*bs-1, 1))
		require.NoError(t, err)
		require.NoError(t, b.WriteByte(0xEE), "the last byte fits in the room of the last block")
		assert.Equal(t, blocks, p.Stats().BlocksInUse)
		within(t, "WriteByte on a Bytes holding the whole pool", func() { err = b.WriteByte(0xEF) })
		assert.ErrorIs(t, err, ErrPoolTooSmall)
		assert.Equal(t, blocks*bs, b.Len())
		// After reading a block, the Bytes may hold one more.
		buf := make([]byte, bs)
		_, err = b.Read(buf)
		require.NoError(t, err)
		n, err := b.Write(fill(bs, 2))
		require.NoError(t, err)
		assert.Equal(t, bs, n)
		assert.Equal(t, blocks*bs, b.Len())
	})

	t.Run("maxLen is checked before waiting", func(t *testing.T) {
		hs := holdBlocks(t, p, blocks)
		defer func() {
			for _, h := range hs {
				h.Free()
			}
		}()
		b := p.NewBytes(10)
		defer b.Free()
		var n int
		var err error
		within(t, "a write past maxLen on an exhausted pool", func() { n, err = b.Write(fill(11, 1)) })
		assert.Equal(t, 0, n)
		assert.ErrorIs(t, err, ErrBytesCapacityTooSmall)
		assert.Equal(t, 0, p.Stats().Waiters)
	})
}

func TestEmptyOperations(t *testing.T) {
	const bs = 16
	p := testPool(t, 2*bs, bs)
	b := p.NewBytes(0)
	defer b.Free()

	// Empty reads.
	n, err := b.Read(nil)
	assert.Equal(t, 0, n)
	assert.NoError(t, err, "Read with len(p)==0 returns 0, nil even on an empty Bytes")
	n, err = b.Read(make([]byte, 10))
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err)
	_, err = b.ReadByte()
	assert.Equal(t, io.EOF, err)
	var out bytes.Buffer
	n64, err := b.WriteTo(&out)
	assert.Equal(t, int64(0), n64)
	assert.NoError(t, err)
	assert.Equal(t, 0, out.Len())
	n64, err = b.ReadFrom(strings.NewReader(""))
	assert.Equal(t, int64(0), n64)
	assert.NoError(t, err)
	n64, err = b.ReadFrom(noLen{strings.NewReader("")})
	assert.Equal(t, int64(0), n64)
	assert.NoError(t, err)
	assert.Equal(t, 0, p.Stats().BlocksInUse)

	// Empty writes succeed and take no block, even when the pool is
	// exhausted (they must not wait) and the Bytes is full.
	_, err = b.Write(fill(2*bs, 1))
	require.NoError(t, err)
	full := p.NewBytes(2 * bs)
	defer full.Free()
	within(t, "empty writes on an exhausted pool", func() {
		n, err := b.Write(nil)
		assert.Equal(t, 0, n)
		assert.NoError(t, err)
		n, err = b.Write([]byte{})
		assert.Equal(t, 0, n)
		assert.NoError(t, err)
		n, err = b.WriteString("")
		assert.Equal(t, 0, n)
		assert.NoError(t, err)
		n, err = b.WriteContext(context.Background(), nil)
		assert.Equal(t, 0, n)
		assert.NoError(t, err)
		n, err = full.Write(nil)
		assert.Equal(t, 0, n)
		assert.NoError(t, err)
	})
	assert.Equal(t, 2*bs, b.Len())
	assert.Equal(t, 0, full.Len())
	assert.Equal(t, 2, p.Stats().BlocksInUse)
	assert.Equal(t, 0, p.Stats().Waiters)

	// An empty Read on a non-empty Bytes consumes nothing.
	n, err = b.Read([]byte{})
	assert.Equal(t, 0, n)
	assert.NoError(t, err)
	assert.Equal(t, 2*bs, b.Len())
}

// Bytes that other writers of b wait to write count against maxLen.
func TestMaxLenCountsWaitingWrites(t *testing.T) {
	const bs = 16
	p := testPool(t, 2*bs, bs)
	hs := holdBlocks(t, p, 2)
	b := p.NewBytes(40)
	defer b.Free()
	data := fill(30, 1)
	ch := parkedWrite(t, p, b, data, 1)
	var n int
	var err error
	within(t, "a write that would pass maxLen with the waiting one", func() { n, err = b.Write(fill(11, 2)) })
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, ErrBytesCapacityTooSmall)
	hs[0].Free()
	hs[1].Free()
	r := await(t, "the waiting write", ch)
	require.NoError(t, r.err)
	assert.Equal(t, int64(30), r.n)
	assert.Equal(t, data, readAll(t, b))
}

// ---------------------------------------------------------------------------
// ReadFrom

func TestReadFromMaxLen(t *testing.T) {
	const bs, maxLen = 16, 100
	p := testPool(t, 0, bs)
	src := fill(maxLen+50, 1)

	t.Run("bytes.Reader exact fit", func(t *testing.T) {
		b := p.NewBytes(maxLen)
		defer b.Free()
		n, err := b.ReadFrom(bytes.NewReader(src[:maxLen]))
		assert.NoError(t, err, "a source known to be drained ends without an error")
		assert.Equal(t, int64(maxLen), n)
		assert.Equal(t, src[:maxLen], readAll(t, b))
	})

	t.Run("data and EOF together, exact fit", func(t *testing.T) {
		b := p.NewBytes(maxLen)
		defer b.Free()
		n, err := b.ReadFrom(iotest.DataErrReader(noLen{bytes.NewReader(src[:maxLen])}))
		assert.NoError(t, err)
		assert.Equal(t, int64(maxLen), n)
		assert.Equal(t, src[:maxLen], readAll(t, b))
	})

	for _, extra := range []int{0, 1, 50} {
		t.Run(fmt.Sprintf("reader without Len, %d bytes past maxLen", extra), func(t *testing.T) {
			b := p.NewBytes(maxLen)
			defer b.Free()
			under := bytes.NewReader(src[:maxLen+extra])
			n, err := b.ReadFrom(noLen{under})
			assert.ErrorIs(t, err, ErrBytesCapacityTooSmall, "ReadFrom cannot tell the source is at its end")
			assert.Equal(t, int64(maxLen), n)
			assert.Equal(t, extra, under.Len(), "ReadFrom read past what fits")
			assert.Equal(t, src[:maxLen], readAll(t, b))
		})
	}

	t.Run("bytes.Reader past maxLen", func(t *testing.T) {
		b := p.NewBytes(maxLen)
		defer b.Free()
		under := bytes.NewReader(src)
		n, err := b.ReadFrom(under)
		assert.ErrorIs(t, err, ErrBytesCapacityTooSmall)
		assert.Equal(t, int64(maxLen), n)
		assert.Equal(t, len(src)-maxLen, under.Len())
		assert.Equal(t, src[:maxLen], readAll(t, b))
	})

	t.Run("short reads, partly full", func(t *testing.T) {
		b := p.NewBytes(maxLen)
		defer b.Free()
		head := fill(30, 9)
		_, err := b.Write(head)
		require.NoError(t, err)
		under := bytes.NewReader(src)
		n, err := b.ReadFrom(iotest.HalfReader(under))
		assert.ErrorIs(t, err, ErrBytesCapacityTooSmall)
		assert.Equal(t, int64(maxLen-30), n)
		assert.Equal(t, len(src)-(maxLen-30), under.Len())
		assert.Equal(t, append(append([]byte{}, head...), src[:maxLen-30]...), readAll(t, b))
	})

	t.Run("already full", func(t *testing.T) {
		b := p.NewBytes(maxLen)
		defer b.Free()
		_, err := b.Write(src[:maxLen])
		require.NoError(t, err)
		under := bytes.NewReader(src)
		n, err := b.ReadFrom(noLen{under})
		assert.ErrorIs(t, err, ErrBytesCapacityTooSmall)
		assert.Equal(t, int64(0), n)
		assert.Equal(t, len(src), under.Len())
		n, err = b.ReadFrom(strings.NewReader(""))
		assert.NoError(t, err, "a drained source fits even in a full Bytes")
		assert.Equal(t, int64(0), n)
		assert.Equal(t, maxLen, b.Len())
	})
}

func TestReadFromPoolLimit(t *testing.T) {
	const bs, blocks = 16, 4
	p := testPool(t, blocks*bs, bs)
	src := fill(blocks*bs+1, 1)

	t.Run("bytes.Reader exactly the pool", func(t *testing.T) {
		b := p.NewBytes(0)
		defer b.Free()
		var n int64
		var err error
		within(t, "ReadFrom", func() { n, err = b.ReadFrom(bytes.NewReader(src[:blocks*bs])) })
		assert.NoError(t, err)
		assert.Equal(t, int64(blocks*bs), n)
		assert.Equal(t, src[:blocks*bs], readAll(t, b))
	})
	for _, k := range []int{blocks * bs, blocks*bs + 1} {
		t.Run(fmt.Sprintf("reader without Len of %d bytes", k), func(t *testing.T) {
			b := p.NewBytes(0)
			defer b.Free()
			under := bytes.NewReader(src[:k])
			var n int64
			var err error
			within(t, "ReadFrom", func() { n, err = b.ReadFrom(noLen{under}) })
			// Once b holds the whole pool, full, ReadFrom cannot tell
			// a source at its end from one with more without reading
			// a byte it has nowhere to put, so it reads nothing more
			// and says ErrPoolTooSmall: nothing of r is lost.
			assert.ErrorIs(t, err, ErrPoolTooSmall)
			assert.Equal(t, int64(blocks*bs), n)
			assert.Equal(t, k-blocks*bs, under.Len())
			assert.Equal(t, 0, p.Stats().Waiters)
			assert.Equal(t, src[:blocks*bs], readAll(t, b))
		})
	}
}

func TestReadFromSourceErrors(t *testing.T) {
	const bs = 16
	p := testPool(t, 8*bs, bs)
	data := fill(100, 3)

	b := p.NewBytes(0)
	defer b.Free()
	n, err := b.ReadFrom(iotest.ErrReader(errTest))
	assert.Equal(t, int64(0), n)
	assert.ErrorIs(t, err, errTest)
	assert.Equal(t, 0, b.Len())
	assert.Equal(t, 0, p.Stats().BlocksInUse, "the block read into goes back")

	// TimeoutReader returns data on the first read and fails the second.
	n, err = b.ReadFrom(iotest.TimeoutReader(bytes.NewReader(data)))
	assert.Equal(t, int64(bs), n)
	assert.ErrorIs(t, err, iotest.ErrTimeout)
	assert.Equal(t, data[:bs], readAll(t, b))

	// Data and an error in the same call: the data is kept.
	n, err = b.ReadFrom(io.MultiReader(bytes.NewReader(data[:5]), iotest.ErrReader(errTest)))
	assert.Equal(t, int64(5), n)
	assert.ErrorIs(t, err, errTest)
	assert.Equal(t, data[:5], readAll(t, b))
	assert.Equal(t, 0, p.Stats().BlocksInUse)
}

// A reader or writer that panics, or that returns a count outside the
// buffer, leaves b as it was: the block ReadFrom was reading into goes back
// to the pool and its bytes stop counting against maxLen; the blocks
// WriteTo was writing from stay in b, none of their bytes taken.
func TestReadFromAndWriteToPanics(t *testing.T) {
	const bs, maxLen = 16, 64
	for _, c := range []struct {
		name string
		call func(b *Bytes)
		msg  string // what the panic says, if it is ours
	}{
		{"ReadFrom, bad count", func(b *Bytes) { _, _ = b.ReadFrom(readerFunc(func(p []byte) (int, error) { return len(p) + 1, nil })) }, "reader returned count 12 for a buffer of 11 bytes"}, // the room of the last block
		{"ReadFrom, reader panics", func(b *Bytes) {
			_, _ = b.ReadFrom(readerFunc(func(p []byte) (int, error) { copy(p, "junk"); panic(errTest) }))
		}, ""},
		{"ReadFrom, second read panics", func(b *Bytes) {
			calls := 0
			_, _ = b.ReadFrom(readerFunc(func(p []byte) (int, error) {
				if calls++; calls == 2 {
					panic(errTest)
				}
				return copy(p, "abc"), nil
			}))
		}, ""},
		{"WriteTo, writer panics", func(b *Bytes) { _, _ = b.WriteTo(writerFunc(func([]byte) (int, error) { panic(errTest) })) }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := testPool(t, 0, bs)
			b := p.NewBytes(maxLen)
			defer b.Free()
			data := fill(2*bs+5, 7)
			writeAll(t, b, data)
			got := fmt.Sprint(func() (v any) {
				defer func() { v = recover() }()
				c.call(b)
				return nil
			}())
			if c.msg != "" {
				assert.Contains(t, got, c.msg)
			} else {
				assert.Equal(t, errTest.Error(), got)
			}
			if c.name == "ReadFrom, second read panics" {
				data = append(data, "abc"...) // the first read's bytes went in
			}
			assert.Equal(t, len(data), b.Len())
			assert.Equal(t, (len(data)+bs-1)/bs, p.Stats().BlocksInUse, "blocks leaked")
			// b is usable, takes exactly up to its maxLen again, and holds
			// its data in order.
			more := fill(maxLen-len(data), 8)
			writeAll(t, b, more)
			n, err := b.Write([]byte{1})
			assert.ErrorIs(t, err, ErrBytesCapacityTooSmall)
			assert.Equal(t, 0, n)
			var out bytes.Buffer // and the next WriteTo gets its turn
			within(t, "a WriteTo after the panic", func() { _, err = b.WriteTo(&out) })
			assert.NoError(t, err)
			assert.Equal(t, append(data, more...), out.Bytes())
		})
	}
}

// ---------------------------------------------------------------------------
// WriteTo

func TestWriteToWriterFailingMidway(t *testing.T) {
	const bs = 16
	data := fill(10*bs, 1)
	for _, k := range []int{0, 1, bs - 1, bs, bs + 1, 5*bs + 3, 10*bs - 1} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			p := testPool(t, 11*bs, bs)
			b := p.NewBytes(0)
			defer b.Free()
			_, err := b.Write(data)
			require.NoError(t, err)
			w := &errWriter{k: k, err: errTest}
			n, err := b.WriteTo(w)
			assert.ErrorIs(t, err, errTest)
			assert.Equal(t, int64(k), n)
			assert.Equal(t, data[:k], nonNil(w.buf.Bytes()))
			assert.Equal(t, len(data)-k, b.Len(), "what w did not take is put back")
			assert.Equal(t, 10-k/bs, p.Stats().BlocksInUse, "the blocks w took in full went back")
			// The rest is still there, in order, and b keeps working.
			require.NoError(t, b.WriteByte(0x5A))
			assert.Equal(t, append(append([]byte{}, data[k:]...), 0x5A), readAll(t, b))
		})
	}
}

func TestWriteToShortWrite(t *testing.T) {
	const bs = 16
	for _, c := range []struct {
		name    string
		size, k int
		w       func(k int) interface {
			io.Writer
			Bytes() []byte
		}
	}{
		// w takes at most k bytes per call: WriteTo must stop at the first
		// short write, as io.Copy does, not go on with the next block.
		{"per call, within one block", 10, 4, perCall},
		{"per call, first of several blocks", 5 * bs, 4, perCall},
		{"per call, every block", 5 * bs, bs - 1, perCall},
		// w takes k bytes in all, then 0 per call.
		{"in all, within the first block", 5 * bs, 4, inAll},
		{"in all, exactly one block", 5 * bs, bs, inAll},
		{"in all, across blocks", 5 * bs, bs + 3, inAll},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := testPool(t, 10*bs, bs)
			b := p.NewBytes(0)
			defer b.Free()
			data := fill(c.size, 2)
			_, err := b.Write(data)
			require.NoError(t, err)
			w := c.w(c.k)
			n, err := b.WriteTo(w)
			assert.ErrorIs(t, err, io.ErrShortWrite)
			assert.Equal(t, int64(c.k), n, "WriteTo reports exactly what w took")
			assert.Equal(t, data[:c.k], w.Bytes(), "w got the head of the data, in order")
			assert.Equal(t, c.size-c.k, b.Len())
			assert.Equal(t, data[c.k:], readAll(t, b))
		})
	}
}

func perCall(k int) interface {
	io.Writer
	Bytes() []byte
} {
	return &shortWriter{k: k}
}

func inAll(k int) interface {
	io.Writer
	Bytes() []byte
} {
	return &stingyWriter{k: k}
}

func TestWriteToBuffer(t *testing.T) {
	const bs = 16
	p := testPool(t, 0, bs)
	b := p.NewBytes(0)
	defer b.Free()
	data := fill(10*bs+5, 1)
	_, err := b.Write(data[:7])
	require.NoError(t, err)
	got := make([]byte, 3)
	_, err = b.Read(got) // start mid-block
	require.NoError(t, err)
	_, err = b.Write(data[7:])
	require.NoError(t, err)

	var out bytes.Buffer
	n, err := io.Copy(&out, b) // uses WriteTo
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)-3), n)
	assert.Equal(t, data[3:], out.Bytes())
	assert.Equal(t, 0, b.Len())
	assert.Equal(t, 0, p.Stats().BlocksInUse)
}

// io.Copy from one Bytes to another of the same pool hands the blocks over:
// no copy, no new block, so it never waits for blocks, even in a pool that
// src nearly fills.
func TestWriteToBytesOfThePool(t *testing.T) {
	const bs = 16
	p := testPool(t, 8*bs, bs)
	src, dst := p.NewBytes(0), p.NewBytes(0)
	defer src.Free()
	defer dst.Free()
	head := fill(bs+3, 1)
	writeAll(t, dst, head) // dst's last block has room that stays empty
	data := fill(5*bs+2, 2)
	writeAll(t, src, data)
	skip := make([]byte, 5)
	_, err := src.Read(skip) // src starts mid-block
	require.NoError(t, err)
	data = data[5:]
	require.Equal(t, 8, p.Stats().BlocksInUse, "the pool is full")

	var n int64
	within(t, "io.Copy", func() { n, err = io.Copy(dst, src) })
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), n)
	assert.Equal(t, 0, src.Len())
	assert.Equal(t, len(head)+len(data), dst.Len())
	assert.Equal(t, 8, p.Stats().BlocksInUse, "the blocks moved; none was added or freed")

	// dst reads back in order, across the block that is not full and the
	// one that starts past its front, in pieces of every size, and keeps
	// working: writes go to the room of its new last block.
	want := append(append([]byte{}, head...), data...)
	c, err := dst.ReadByte()
	require.NoError(t, err)
	assert.Equal(t, want[0], c)
	got := []byte{c}
	for k := 1; dst.Len() > 0; k++ {
		buf := make([]byte, k)
		m, err := dst.Read(buf)
		require.NoError(t, err)
		got = append(got, buf[:m]...)
		if k == 7 {
			writeAll(t, dst, []byte("tail"))
			want = append(want, "tail"...)
		}
	}
	assert.Equal(t, want, got)
	assert.Equal(t, 0, p.Stats().BlocksInUse)
}

func TestWriteToBytesOfThePoolRefused(t *testing.T) {
	const bs = 16
	data := fill(3*bs+1, 3)
	for _, c := range []struct {
		name string
		dst  func(p *BytesPool) *Bytes
		err  error
	}{
		{"over dst's maxLen", func(p *BytesPool) *Bytes {
			d := p.NewBytes(len(data) + 4)
			writeAll(t, d, fill(5, 4))
			return d
		}, ErrBytesCapacityTooSmall},
		{"dst freed", func(p *BytesPool) *Bytes {
			d := p.NewBytes(0)
			d.Free()
			return d
		}, ErrClosed},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := testPool(t, 0, bs)
			src := p.NewBytes(0)
			defer src.Free()
			writeAll(t, src, data)
			dst := c.dst(p)
			defer dst.Free()
			n, err := src.WriteTo(dst)
			assert.ErrorIs(t, err, c.err)
			assert.Equal(t, int64(0), n)
			// src keeps everything, and the next WriteTo gets its turn.
			var out bytes.Buffer
			within(t, "the next WriteTo", func() { n, err = src.WriteTo(&out) })
			assert.NoError(t, err)
			assert.Equal(t, data, out.Bytes())
		})
	}
}

func TestWriteToBytesOfAnotherPool(t *testing.T) {
	const bs = 16
	p, q := testPool(t, 0, bs), testPool(t, 0, 2*bs)
	src, dst := p.NewBytes(0), q.NewBytes(0)
	defer src.Free()
	defer dst.Free()
	data := fill(5*bs+3, 5)
	writeAll(t, src, data)
	n, err := io.Copy(dst, src)
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), n)
	assert.Equal(t, 0, p.Stats().BlocksInUse, "src's blocks went back to its pool")
	assert.Equal(t, 3, q.Stats().BlocksInUse, "dst holds blocks of its own pool")
	assert.Equal(t, data, readAll(t, dst))
}

func TestWriteToItself(t *testing.T) {
	p := testPool(t, 0, 16)
	b := p.NewBytes(0)
	defer b.Free()
	data := fill(50, 6)
	writeAll(t, b, data)
	var n int64
	var err error
	within(t, "b.WriteTo(b)", func() { n, err = b.WriteTo(b) })
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), n)
	assert.Equal(t, data, readAll(t, b))
	assert.Equal(t, 0, p.Stats().BlocksInUse)
}

// Blocks handed from Bytes to Bytes while others write and read them: a
// writer appends numbered records to a, a mover hands a's blocks to b with
// WriteTo, and a reader drains b. The records come out whole and in order,
// and every block goes back.
func TestWriteToBytesConcurrent(t *testing.T) {
	const bs, rec = 16, 7
	records := 3000
	if testing.Short() {
		records = 300
	}
	p := testPool(t, 64*bs, bs)
	a, b := p.NewBytes(0), p.NewBytes(0)
	defer a.Free()
	defer b.Free()
	var wg sync.WaitGroup
	var written atomic.Bool
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer written.Store(true)
		for i := range records {
			var r [rec]byte
			binary.LittleEndian.PutUint32(r[:], uint32(i))
			copy(r[4:], "rec")
			// A Bytes that would hold more blocks than the pool gets
			// ErrPoolTooSmall: keep a well below.
			for a.Len() > 16*bs {
				runtime.Gosched()
			}
			if _, err := a.Write(r[:]); !assert.NoError(t, err) {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			done := written.Load()
			if _, err := a.WriteTo(b); !assert.NoError(t, err) {
				return
			}
			if done {
				return
			}
			runtime.Gosched()
		}
	}()
	var got []byte
	buf := make([]byte, 5)
	deadline := time.Now().Add(waitTimeout)
	for next := 0; next < records*rec; {
		n, err := b.Read(buf[:1+next%len(buf)])
		if err == io.EOF {
			require.True(t, time.Now().Before(deadline), "the reader got %d of %d bytes", next, records*rec)
			runtime.Gosched()
			continue
		}
		require.NoError(t, err)
		got = append(got, buf[:n]...)
		next += n
	}
	wg.Wait()
	require.Len(t, got, records*rec)
	for i := range records {
		r := got[i*rec : (i+1)*rec]
		require.Equal(t, uint32(i), binary.LittleEndian.Uint32(r), "record %d", i)
		require.Equal(t, "rec", string(r[4:]), "record %d", i)
	}
	assert.Equal(t, 0, a.Len()+b.Len())
}

// WriteTos between two Bytes in both directions at once take the two locks
// in one order, so they cannot deadlock, and they neither lose nor add a
// byte.
func TestWriteToBytesBothWays(t *testing.T) {
	rounds := 2000
	if testing.Short() {
		rounds = 200
	}
	p := testPool(t, 0, 16)
	a, b := p.NewBytes(0), p.NewBytes(0)
	defer a.Free()
	defer b.Free()
	writeAll(t, a, fill(100, 1))
	writeAll(t, b, fill(60, 2))
	within(t, "WriteTos both ways", func() {
		var wg sync.WaitGroup
		for _, pair := range [][2]*Bytes{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					if err := pair[0].WriteByte('x'); !assert.NoError(t, err) {
						return
					}
					if _, err := pair[0].WriteTo(pair[1]); !assert.NoError(t, err) {
						return
					}
				}
			}()
		}
		wg.Wait()
	})
	want := 160 + 2*rounds
	assert.Equal(t, want, a.Len()+b.Len())
	got := append(readAll(t, a), readAll(t, b)...)
	assert.Len(t, got, want)
	assert.Equal(t, 0, p.Stats().BlocksInUse)
}

// Two WriteTos of one Bytes take turns: what the first does not write goes
// back in front of what the second takes, so the bytes left in b stay in
// the order they were written. If the second could take the bytes written
// meanwhile before the first put its rest back, a short write of each,
// the first's returning first, would leave the second's rest in front.
func TestConcurrentWriteTosKeepOrder(t *testing.T) {
	const bs = 16
	p := testPool(t, 0, bs)
	b := p.NewBytes(0)
	defer b.Free()
	d1, d2 := fill(3*bs, 1), fill(2*bs, 2)
	writeAll(t, b, d1)
	// Each writer takes 5 bytes once it is let go, and no more.
	gate := func(entered chan<- struct{}, release <-chan struct{}) io.Writer {
		return writerFunc(func(q []byte) (int, error) {
			entered <- struct{}{}
			<-release
			return min(5, len(q)), nil
		})
	}
	in1, go1 := make(chan struct{}, 1), make(chan struct{})
	first := async(func() (int64, error) { return b.WriteTo(gate(in1, go1)) })
	<-in1 // the first WriteTo has taken d1 out of b
	writeAll(t, b, d2)
	in2, go2 := make(chan struct{}, 1), make(chan struct{})
	second := async(func() (int64, error) { return b.WriteTo(gate(in2, go2)) })
	select {
	case <-in2:
		// The second WriteTo took d2 while the first was writing: with
		// turns, it must not get here before the first returns.
		close(go1)
		r1 := await(t, "the first WriteTo", first)
		close(go2)
		r2 := await(t, "the second WriteTo", second)
		t.Fatalf("two WriteTos wrote at once (%d, %v and %d, %v); b now holds %x", r1.n, r1.err, r2.n, r2.err, readAll(t, b))
	case <-time.After(settle):
	}
	close(go1)
	r1 := await(t, "the first WriteTo", first)
	assert.Equal(t, int64(5), r1.n)
	assert.ErrorIs(t, r1.err, io.ErrShortWrite)
	<-in2 // the second takes the first's rest and d2, in order
	close(go2)
	r2 := await(t, "the second WriteTo", second)
	assert.Equal(t, int64(5), r2.n)
	assert.ErrorIs(t, r2.err, io.ErrShortWrite)
	want := append(append([]byte{}, d1[10:]...), d2...)
	assert.Equal(t, want, readAll(t, b))
}

// Free while a WriteTo waits for its turn ends the wait with ErrClosed, and
// the WriteTo that held the turn returns ErrClosed once its writer does.
func TestFreeWakesWriteToWaitingForTurn(t *testing.T) {
	p := testPool(t, 0, 16)
	b := p.NewBytes(0)
	writeAll(t, b, fill(40, 1))
	entered, release := make(chan struct{}, 1), make(chan struct{})
	first := async(func() (int64, error) {
		return b.WriteTo(writerFunc(func(q []byte) (int, error) {
			entered <- struct{}{}
			<-release
			return len(q), nil
		}))
	})
	<-entered
	writeAll(t, b, fill(8, 2))
	second := async(func() (int64, error) { return b.WriteTo(io.Discard) })
	time.Sleep(settle)
	require.True(t, stillRunning(second), "the second WriteTo did not wait for its turn")
	b.Free()
	r2 := await(t, "the waiting WriteTo", second)
	assert.ErrorIs(t, r2.err, ErrClosed)
	assert.Equal(t, int64(0), r2.n)
	close(release)
	r1 := await(t, "the WriteTo in flight", first)
	assert.ErrorIs(t, r1.err, ErrClosed)
	assert.Equal(t, int64(40), r1.n, "its writer took all it was given")
	assert.Equal(t, 0, p.Stats().BlocksInUse)
}

// A net.Conn gets the data through net.Buffers, which consumes the slice it
// is given (it sets the buffers it wrote to nil). WriteTo must still free
// every block, keep b's maxLen whole, and leave nothing to be read again.
func TestWriteToNetConn(t *testing.T) {
	const bs = 16
	const maxLen = 10 * bs
	for _, c := range []struct {
		name  string
		conns func(t *testing.T) (net.Conn, net.Conn)
	}{
		{"tcp, writev", tcpConns},
		{"net.Pipe, a Write per buffer", func(*testing.T) (net.Conn, net.Conn) { return net.Pipe() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := testPool(t, 0, bs)
			b := p.NewBytes(maxLen)
			defer b.Free()
			data := fill(maxLen, 3)
			writeAll(t, b, data[:bs+5])
			head := make([]byte, 3)
			_, err := b.Read(head) // start mid-block
			require.NoError(t, err)
			writeAll(t, b, data[bs+5:maxLen-20])
			want := data[3 : maxLen-20]

			src, dst := c.conns(t)
			defer src.Close()
			defer dst.Close()
			got := make(chan []byte, 1)
			go func() {
				buf := make([]byte, len(want))
				_, err := io.ReadFull(dst, buf)
				assert.NoError(t, err)
				got <- buf
			}()
			n, err := b.WriteTo(src)
			require.NoError(t, err)
			assert.Equal(t, int64(len(want)), n)
			select {
			case buf := <-got:
				assert.Equal(t, want, buf)
			case <-time.After(waitTimeout):
				t.Fatal("the conn's other end got nothing")
			}
			assert.Equal(t, 0, b.Len())
			assert.Equal(t, 0, p.Stats().BlocksInUse, "WriteTo freed what the conn took")
			// b takes its whole maxLen again, and reads back only that.
			writeAll(t, b, data)
			assert.Equal(t, data, readAll(t, b))
		})
	}
}

// tcpConns returns the two ends of a loopback TCP connection, whose
// net.Buffers writes are one writev.
func tcpConns(t *testing.T) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		assert.NoError(t, err)
		accepted <- c
	}()
	src, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	return src, <-accepted
}

// A writer that returns a count outside [0, len(p)] breaks the io.Writer
// contract: WriteTo reports it, counts none of that buffer as taken, and b
// keeps it.
func TestWriteToInvalidCount(t *testing.T) {
	const bs = 16
	data := fill(5*bs, 4)
	for _, k := range []int{-1, 5*bs + 100} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			p := testPool(t, 0, bs)
			b := p.NewBytes(0)
			defer b.Free()
			writeAll(t, b, data)
			n, err := b.WriteTo(writerFunc(func([]byte) (int, error) { return k, nil }))
			assert.ErrorIs(t, err, errInvalidWrite)
			assert.Equal(t, int64(0), n)
			assert.Equal(t, len(data), b.Len())
			assert.Equal(t, data, readAll(t, b))
		})
	}
}

// WriteTo takes the data out of b while w runs, but b must never end up
// holding more than maxLen: the data WriteTo puts back counts.
func TestWriteToFailureKeepsMaxLen(t *testing.T) {
	const bs, maxLen = 16, 100
	p := testPool(t, 0, bs)
	b := p.NewBytes(maxLen)
	defer b.Free()
	data := fill(maxLen, 1)
	_, err := b.Write(data)
	require.NoError(t, err)

	var innerN int
	var innerErr error
	w := writerFunc(func(q []byte) (int, error) {
		// Runs inside WriteTo, as another writer of b would.
		innerN, innerErr = b.Write(fill(50, 2))
		return 0, errTest
	})
	n, err := b.WriteTo(w)
	assert.Equal(t, int64(0), n)
	assert.ErrorIs(t, err, errTest)
	assert.LessOrEqual(t, b.Len(), maxLen, "b holds more than its maxLen")
	assert.Equal(t, 0, innerN)
	assert.ErrorIs(t, innerErr, ErrBytesCapacityTooSmall)
	assert.Equal(t, data, readAll(t, b))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// ---------------------------------------------------------------------------
// Use after Free

func TestUseAfterFree(t *testing.T) {
	p := testPool(t, 0, 16)
	b := p.NewBytes(0)
	_, err := b.Write(fill(40, 1))
	require.NoError(t, err)
	b.Free()
	assert.Equal(t, 0, p.Stats().BlocksInUse)

	n, err := b.Write([]byte("x"))
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, ErrClosed)
	n, err = b.Write(nil)
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, ErrClosed)
	n, err = b.WriteString("x")
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, b.WriteByte('x'), ErrClosed)
	n, err = b.WriteContext(context.Background(), []byte("x"))
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, ErrClosed)
	n64, err := b.ReadFrom(strings.NewReader("x"))
	assert.Equal(t, int64(0), n64)
	assert.ErrorIs(t, err, ErrClosed)
	n, err = b.Read(make([]byte, 4))
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, ErrClosed)
	n, err = b.Read(nil)
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = b.ReadByte()
	assert.ErrorIs(t, err, ErrClosed)
	var out bytes.Buffer
	n64, err = b.WriteTo(&out)
	assert.Equal(t, int64(0), n64)
	assert.ErrorIs(t, err, ErrClosed)
	assert.Equal(t, 0, out.Len())
	assert.Equal(t, 0, b.Len())
	assert.NotPanics(t, b.Reset)
	assert.NotPanics(t, b.Free, "Free twice is harmless")
	assert.ErrorIs(t, b.Close(), ErrClosed)
	assert.Equal(t, 0, p.Stats().BlocksInUse)
}

// Two Closes racing on one Bytes: exactly one frees it. If both saw it
// open, the second would free the header again, though by then it may have
// been reissued to another owner.
func TestConcurrentCloseFreesOnce(t *testing.T) {
	rounds := 20000 // the old code failed about once in 10,000 rounds
	if testing.Short() {
		rounds = 2000
	}
	p := testPool(t, 0, 16)
	for i := range rounds {
		b := p.NewBytes(0)
		writeAll(t, b, fill(40, byte(i)))
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- b.Close() }()
		}
		e1, e2 := <-errs, <-errs
		if e1 != nil {
			e1, e2 = e2, e1
		}
		require.NoError(t, e1, "round %d: neither Close freed b", i)
		require.ErrorIs(t, e2, ErrClosed, "round %d: both Closes freed b", i)
		require.Equal(t, 0, p.Stats().BlocksInUse, "round %d", i)
	}
}

func TestCloseThenClose(t *testing.T) {
	p := testPool(t, 0, 16)
	b := p.NewBytes(0)
	_, err := b.Write(fill(40, 1))
	require.NoError(t, err)
	assert.NoError(t, b.Close())
	assert.Equal(t, 0, p.Stats().BlocksInUse)
	assert.ErrorIs(t, b.Close(), ErrClosed)
	n, err := b.Write([]byte("x"))
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, ErrClosed)
}

func TestReissuedHeaderStartsEmpty(t *testing.T) {
	p := testPool(t, 0, 16)
	for i := range 50 {
		b := p.NewBytes(10)
		assert.Equal(t, 0, b.Len(), "round %d", i)
		n, err := b.Write(fill(10, byte(i)))
		require.NoError(t, err)
		require.Equal(t, 10, n)
		n, err = b.Write([]byte{1})
		assert.ErrorIs(t, err, ErrBytesCapacityTooSmall, "round %d: the maxLen of the new owner applies", i)
		assert.Equal(t, 0, n)
		b.Free()
	}
}

// ---------------------------------------------------------------------------
// A waiting Write never blocks the other methods of the same Bytes

func TestWaitingWriteDoesNotBlockReaders(t *testing.T) {
	const bs = 16
	p := testPool(t, 10*bs, bs)
	b := p.NewBytes(0)
	defer b.Free()
	held := fill(2*bs, 1)
	_, err := b.Write(held)
	require.NoError(t, err)
	hs := holdBlocks(t, p, 8)
	defer func() {
		for _, h := range hs {
			h.Free()
		}
	}()

	// Needs 8 blocks; b holds 2 and the other 8 are held elsewhere.
	data := fill(8*bs, 2)
	ch := parkedWrite(t, p, b, data, 1)

	within(t, "Len", func() { assert.Equal(t, 2*bs, b.Len()) })
	within(t, "Read", func() {
		buf := make([]byte, bs)
		n, err := b.Read(buf)
		assert.NoError(t, err)
		assert.Equal(t, bs, n)
		assert.Equal(t, held[:bs], buf)
	})
	assert.Equal(t, 1, p.Stats().Waiters, "one free block is not enough for the writer")
	within(t, "ReadByte", func() {
		c, err := b.ReadByte()
		assert.NoError(t, err)
		assert.Equal(t, held[bs], c)
	})
	within(t, "Len", func() { assert.Equal(t, bs-1, b.Len()) })
	within(t, "WriteTo", func() {
		w := &errWriter{k: 3, err: errTest}
		n, err := b.WriteTo(w)
		assert.ErrorIs(t, err, errTest)
		assert.Equal(t, int64(3), n)
		assert.Equal(t, held[bs+1:bs+4], w.buf.Bytes())
	})
	within(t, "Len", func() { assert.Equal(t, bs-4, b.Len()) })
	within(t, "Reset", b.Reset)
	within(t, "Len", func() { assert.Equal(t, 0, b.Len()) })
	assert.Equal(t, 1, p.Stats().Waiters)
	assert.True(t, stillRunning(ch))
	assert.Equal(t, 10, p.Stats().BlocksInUse, "8 held elsewhere, and the 2 that b freed, reserved by the writer at the head of the queue")

	// Blocks freed elsewhere let the writer finish.
	for _, h := range hs[:6] {
		h.Free()
	}
	hs = hs[6:]
	r := await(t, "the waiting write", ch)
	require.NoError(t, r.err)
	assert.Equal(t, int64(8*bs), r.n)
	assert.Equal(t, data, readAll(t, b))
}

// ---------------------------------------------------------------------------
// One Bytes shared by concurrent writers and a reader

const recSize = 64

// record builds record seq of writer id: id, seq, a body derived from
// both, and a checksum.
func record(id byte, seq uint32) []byte {
	r := make([]byte, recSize)
	r[0] = id
	binary.LittleEndian.PutUint32(r[1:5], seq)
	for i := 5; i < recSize-1; i++ {
		r[i] = id*31 + byte(seq)*7 + byte(i)
	}
	var sum byte
	for _, c := range r[:recSize-1] {
		sum += c
	}
	r[recSize-1] = sum
	return r
}

func TestConcurrentWritersOneReader(t *testing.T) {
	const (
		bs      = 100 // records straddle blocks
		writers = 4
	)
	perWriter := 2000
	if testing.Short() {
		perWriter = 200
	}
	p := testPool(t, 32*bs, bs)
	b := p.NewBytes(0)
	defer b.Free()

	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range uint32(perWriter) {
				rec := record(byte(g), seq)
				for {
					var n int
					var err error
					switch seq % 3 {
					case 0:
						n, err = b.Write(rec)
					case 1:
						n, err = b.WriteString(string(rec))
					case 2:
						n, err = b.WriteContext(context.Background(), rec)
					}
					if err == ErrPoolTooSmall {
						// b holds the whole pool; wait for the reader.
						runtime.Gosched()
						continue
					}
					if !assert.NoError(t, err) || !assert.Equal(t, recSize, n) {
						return
					}
					break
				}
			}
		}()
	}

	next := make([]uint32, writers)
	total := writers * perWriter
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		rec := make([]byte, recSize)
		got := 0
		deadline := time.Now().Add(waitTimeout)
		for got < total {
			have := 0
			for have < recSize {
				n, err := b.Read(rec[have:])
				have += n
				if err == io.EOF {
					if time.Now().After(deadline) {
						assert.Fail(t, "reader starved", "got %d of %d records", got, total)
						return
					}
					runtime.Gosched()
					continue
				}
				if !assert.NoError(t, err) {
					return
				}
			}
			id := rec[0]
			if !assert.Less(t, int(id), writers, "record %d: bad writer id", got) {
				return
			}
			seq := binary.LittleEndian.Uint32(rec[1:5])
			if !assert.Equal(t, next[id], seq, "record %d: writer %d out of order", got, id) ||
				!assert.Equal(t, record(id, seq), rec, "record %d torn", got) {
				return
			}
			next[id]++
			got++
		}
	}()
	within(t, "the writers", wg.Wait)
	select {
	case <-readerDone:
	case <-time.After(waitTimeout):
		t.Fatal("the reader did not finish")
	}
	for g := range writers {
		assert.Equal(t, uint32(perWriter), next[g], "records of writer %d", g)
	}
	assert.Equal(t, 0, b.Len())
	assert.Equal(t, 0, p.Stats().BlocksInUse)
}

// Several goroutines drain one Bytes with WriteTo while others write
// records to it. WriteTo takes the whole chain at once and Write appends
// atomically, so every WriteTo hands over whole records only, and every
// record reaches exactly one drainer, intact.
func TestConcurrentWriteToAndWriters(t *testing.T) {
	const (
		bs       = 100
		writers  = 4
		drainers = 3
	)
	perWriter := 1000
	if testing.Short() {
		perWriter = 100
	}
	p := testPool(t, 0, bs)
	b := p.NewBytes(0)
	defer b.Free()

	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range uint32(perWriter) {
				n, err := b.Write(record(byte(g), seq))
				if !assert.NoError(t, err) || !assert.Equal(t, recSize, n) {
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	outs := make([]bytes.Buffer, drainers)
	var dg sync.WaitGroup
	for d := range drainers {
		dg.Add(1)
		go func() {
			defer dg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := b.WriteTo(&outs[d])
				if !assert.NoError(t, err) || !assert.Zero(t, n%recSize, "WriteTo split a record") {
					return
				}
				if n == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	within(t, "the writers", wg.Wait)
	close(stop)
	within(t, "the drainers", dg.Wait)
	// What is left after the drainers stopped.
	_, err := b.WriteTo(&outs[0])
	require.NoError(t, err)

	seen := make([][]bool, writers)
	for g := range seen {
		seen[g] = make([]bool, perWriter)
	}
	for d := range outs {
		data := outs[d].Bytes()
		require.Zero(t, len(data)%recSize)
		last := make([]int64, writers)
		for i := range last {
			last[i] = -1
		}
		for ; len(data) > 0; data = data[recSize:] {
			rec := data[:recSize]
			id := rec[0]
			require.Less(t, int(id), writers)
			seq := binary.LittleEndian.Uint32(rec[1:5])
			require.Less(t, int(seq), perWriter)
			require.Equal(t, record(id, seq), rec, "torn record")
			require.False(t, seen[id][seq], "record %d/%d delivered twice", id, seq)
			require.Greater(t, int64(seq), last[id], "records of writer %d out of order", id)
			last[id] = int64(seq)
			seen[id][seq] = true
		}
	}
	for g := range seen {
		for seq, ok := range seen[g] {
			require.True(t, ok, "record %d/%d lost", g, seq)
		}
	}
	assert.Equal(t, 0, b.Len())
	assert.Equal(t, 0, p.Stats().BlocksInUse)
}

// A writer that waited recomputes its need: other writers of the same Bytes
// may have added or filled room in the last block meanwhile.
func TestWriteAfterWaitRecomputesNeed(t *testing.T) {
	const bs = 16

	t.Run("needs fewer: gives the extra block back", func(t *testing.T) {
		p := testPool(t, 3*bs, bs)
		hs := holdBlocks(t, p, 3)
		b := p.NewBytes(0)
		defer b.Free()
		x := fill(5, 1)
		chX := parkedWrite(t, p, b, x, 1) // 1 block
		w := fill(20, 2)
		chW := parkedWrite(t, p, b, w, 2) // 2 blocks, as b has no room yet
		hs[0].Free()
		rX := await(t, "X", chX)
		require.NoError(t, rX.err)
		// X left 11 bytes of room, so W now needs 1 block, not 2.
		hs[1].Free()
		hs[2].Free()
		rW := await(t, "W", chW)
		require.NoError(t, rW.err)
		assert.Equal(t, int64(20), rW.n)
		s := p.Stats()
		assert.Equal(t, 2, s.BlocksInUse, "W kept a block it did not need")
		assert.Equal(t, 0, s.Waiters)
		assert.Equal(t, append(append([]byte{}, x...), w...), readAll(t, b))
	})

	t.Run("needs more, and gets it at once", func(t *testing.T) {
		p := testPool(t, 3*bs, bs)
		b := p.NewBytes(0)
		defer b.Free()
		head := fill(5, 1)
		_, err := b.Write(head) // 11 bytes of room
		require.NoError(t, err)
		h := p.NewBytes(0)
		_, err = h.Write(fill(2*bs, 9)) // the other 2 blocks
		require.NoError(t, err)
		w := fill(20, 2)
		chW := parkedWrite(t, p, b, w, 1) // 1 block after the room
		x := fill(11, 3)
		within(t, "a write that fits in the room", func() {
			n, err := b.Write(x) // no block needed: it does not queue
			assert.NoError(t, err)
			assert.Equal(t, 11, n)
		})
		h.Free() // 2 blocks at once: W is granted 1 and finds it needs 2
		rW := await(t, "W", chW)
		require.NoError(t, rW.err)
		assert.Equal(t, int64(20), rW.n)
		assert.Equal(t, 3, p.Stats().BlocksInUse)
		assert.Equal(t, append(append(append([]byte{}, head...), x...), w...), readAll(t, b))
	})

	t.Run("needs more, and waits again", func(t *testing.T) {
		p := testPool(t, 3*bs, bs)
		b := p.NewBytes(0)
		defer b.Free()
		head := fill(5, 1)
		_, err := b.Write(head)
		require.NoError(t, err)
		hs := holdBlocks(t, p, 2)
		w := fill(20, 2)
		chW := parkedWrite(t, p, b, w, 1)
		x := fill(11, 3)
		_, err = b.Write(x)
		require.NoError(t, err)
		hs[0].Free() // W is granted 1, needs 2, gives it back and queues again
		waitWaiters(t, p, 1)
		assert.True(t, stillRunning(chW))
		// W gave its block back and queued again for 2; as the head of the
		// queue it has reserved the one free block again (b holds 1,
		// hs[1] holds 1), but it holds none while it waits. The queue
		// counts W as waiting a moment before W has collected the block
		// (both under the queue's lock, which Stats does not take), so
		// wait for the count.
		eventually(t, func() bool { return p.Stats().BlocksInUse == 3 }, "the head has collected the free block")
		assert.Equal(t, 1, b.st.c.held(), "b holds only its own block")
		hs[1].Free()
		rW := await(t, "W", chW)
		require.NoError(t, rW.err)
		assert.Equal(t, int64(20), rW.n)
		assert.Equal(t, 3, p.Stats().BlocksInUse)
		assert.Equal(t, append(append(append([]byte{}, head...), x...), w...), readAll(t, b))
	})
}

// Free from inside the writer of WriteTo or the reader of ReadFrom: the
// call ends with ErrClosed and every block goes back.
func TestFreeDuringWriteToAndReadFrom(t *testing.T) {
	const bs = 16
	t.Run("WriteTo", func(t *testing.T) {
		p := testPool(t, 0, bs)
		b := p.NewBytes(0)
		data := fill(5*bs, 1)
		_, err := b.Write(data)
		require.NoError(t, err)
		var got bytes.Buffer
		n, err := b.WriteTo(writerFunc(func(q []byte) (int, error) {
			got.Write(q[:5])
			b.Free()
			return 5, errTest
		}))
		assert.ErrorIs(t, err, ErrClosed)
		assert.Equal(t, int64(5), n)
		assert.Equal(t, data[:5], got.Bytes())
		assert.Equal(t, 0, p.Stats().BlocksInUse)
	})
	t.Run("ReadFrom", func(t *testing.T) {
		p := testPool(t, 0, bs)
		b := p.NewBytes(0)
		calls := 0
		n, err := b.ReadFrom(readerFunc(func(q []byte) (int, error) {
			calls++
			if calls == 2 {
				b.Free()
			}
			return copy(q, "abcde"), nil
		}))
		assert.ErrorIs(t, err, ErrClosed)
		assert.Equal(t, int64(5), n, "only the read before Free counts")
		assert.Equal(t, 2, calls)
		assert.Equal(t, 0, p.Stats().BlocksInUse)
	})
}

// A WriteTo whose Bytes is freed while it writes, and whose header a new
// owner gets on another goroutine, settles with the header's shard while
// the new owner's NewBytes may be looking at its P's shard (shardRecheck):
// the race detector sees the two touch st.c.shard only under mu. The
// goroutines do not synchronize, so that it would see a race.
func TestFreeDuringWriteToThenShardRecheck(t *testing.T) {
	const bs = 16
	// One P, so that the new owner's NewBytes finds the header that Free
	// put in that P's pool.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 50, "the header never came back from the pool")
		p := testPool(t, 0, bs)
		b := p.NewBytes(0)
		data := fill(3*bs, 1)
		_, err := b.Write(data)
		require.NoError(t, err)
		inWrite, release := make(chan struct{}), make(chan struct{})
		var n int64
		var wtErr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, wtErr = b.WriteTo(writerFunc(func(q []byte) (int, error) {
				close(inWrite)
				<-release
				return 0, errTest
			}))
		}()
		<-inWrite
		b.st.uses = shardRecheck - 1 // its next issue looks at the P's shard
		b.Free()
		var rechecked bool
		wg.Add(1)
		go func() { // a new owner, unsynchronized with the WriteTo
			defer wg.Done()
			c := p.NewBytes(0)
			rechecked = c == b && c.st.uses == shardRecheck
			c.Free()
		}()
		close(release)
		wg.Wait()
		if !rechecked { // under -race sync.Pool drops Puts at random
			continue
		}
		assert.ErrorIs(t, wtErr, ErrClosed)
		assert.Equal(t, int64(0), n)
		assert.Equal(t, 0, p.Stats().BlocksInUse)
		return
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// Data written while WriteTo runs goes behind what WriteTo puts back, less
// what was read meanwhile: the blocks put back and those written meanwhile
// may each end or start mid-block.
func TestWriteToPutsBackBeforeConcurrentWrites(t *testing.T) {
	const bs = 16
	for _, c := range []struct{ size, k, inner, innerRead int }{
		{3 * bs, 5, 1, 0},
		{3 * bs, 5, 40, 0},
		{3 * bs, bs + 1, 200, 0},
		{10 * bs, 0, 30 * bs, 0},
		{bs / 2, 3, 5, 0},
		{bs / 2, 3, 2 * bs, 3},
		{3*bs - 1, 2*bs + 3, 3 * bs, bs + 2},
		{2 * bs, 2*bs - 1, bs, bs},
		// The blocks put back end full, and the block after them, the
		// next in the arena, has been read from: a read must not copy
		// across the two as if they were one run.
		{2 * bs, 5, 2 * bs, 3},
	} {
		t.Run(fmt.Sprintf("size=%d/took=%d/inner=%d/innerRead=%d", c.size, c.k, c.inner, c.innerRead), func(t *testing.T) {
			p := testPool(t, 0, bs)
			b := p.NewBytes(0)
			defer b.Free()
			data := fill(c.size, 1)
			_, err := b.Write(data)
			require.NoError(t, err)
			more := fill(c.inner, 2)
			var got bytes.Buffer
			calls := 0
			n, err := b.WriteTo(writerFunc(func(q []byte) (int, error) {
				if calls++; calls == 1 {
					_, werr := b.Write(more) // another writer of b, while WriteTo runs
					assert.NoError(t, werr)
					if c.innerRead > 0 { // and another reader
						r := make([]byte, c.innerRead)
						k, rerr := b.Read(r)
						assert.NoError(t, rerr)
						assert.Equal(t, more[:c.innerRead], r[:k])
					}
				}
				k := min(len(q), c.k-got.Len())
				got.Write(q[:k])
				if k < len(q) {
					return k, errTest
				}
				return k, nil
			}))
			assert.ErrorIs(t, err, errTest)
			assert.Equal(t, int64(c.k), n)
			assert.Equal(t, data[:c.k], nonNil(got.Bytes()))
			after := fill(bs+3, 3) // fills the room of the last block first
			_, err = b.Write(after)
			require.NoError(t, err)
			want := append(append(append([]byte{}, data[c.k:]...), more[c.innerRead:]...), after...)
			assert.Equal(t, len(want), b.Len())
			assert.Equal(t, want, readAll(t, b))
			assert.Equal(t, 0, p.Stats().BlocksInUse)
		})
	}
}

// TestCopiesAcrossAdjacentBlocks checks the runs of blocks that follow each
// other in the arena, which writes and reads copy across at once: a run
// ends at the end of a slab, even where the next block's index follows.
func TestCopiesAcrossAdjacentBlocks(t *testing.T) {
	const bs, b0 = 4096, 64 // an unlimited arena's slab 0 holds b0 blocks of bs
	p := testPool(t, 0, bs)
	b := p.NewBytes(0)
	defer b.Free()
	// Blocks 0 to b0-3, then one write of blocks b0-2 to b0+1, across the
	// slabs: a fresh pool carves its blocks in order.
	data := fill((b0+2)*bs, 1)
	for _, part := range [][]byte{data[:(b0-2)*bs], data[(b0-2)*bs:]} {
		n, err := b.Write(part)
		require.NoError(t, err)
		require.Equal(t, len(part), n)
	}
	require.Equal(t, b0+2, p.Stats().BlocksAllocated)

	got := make([]byte, len(data)+1)
	n, err := b.Read(got[:10]) // the reads below start inside a block
	require.NoError(t, err)
	require.Equal(t, 10, n)
	n, err = b.Read(got[10:])
	require.NoError(t, err)
	require.Equal(t, len(data)-10, n)
	assert.Equal(t, data, got[:len(data)])
	assert.Equal(t, 0, p.Stats().BlocksInUse)
}

// TestWriteToOneWritePerRun checks that WriteTo hands a plain writer one
// buffer per run of adjacent blocks, not one per block.
func TestWriteToOneWritePerRun(t *testing.T) {
	const bs = 16
	count := func(b *Bytes) (calls int, got []byte) {
		var out bytes.Buffer
		_, err := b.WriteTo(writerFunc(func(q []byte) (int, error) {
			calls++
			return out.Write(q)
		}))
		require.NoError(t, err)
		return calls, nonNil(out.Bytes())
	}
	p := testPool(t, 0, bs)
	data := fill(10*bs+5, 1)

	// A fresh pool carves blocks in order: one run.
	b := p.NewBytes(0)
	defer b.Free()
	_, err := b.Write(data)
	require.NoError(t, err)
	calls, got := count(b)
	assert.Equal(t, 1, calls)
	assert.Equal(t, data, got)

	// Two Bytes of one shard written in turn take every other block: one
	// run each. (On two shards, each would carve from a stripe of its own
	// once b's freed blocks ran out, and so write runs.)
	c := p.NewBytes(0)
	defer c.Free()
	c.st.c.shard = b.st.c.shard
	for i := 0; i < len(data); i += bs {
		for _, x := range []*Bytes{b, c} {
			_, err := x.Write(data[i:min(i+bs, len(data))])
			require.NoError(t, err)
		}
	}
	calls, got = count(b)
	assert.Equal(t, 11, calls, "one per block")
	assert.Equal(t, data, got)
	assert.Equal(t, len(data), c.Len())
}

// TestOneBlockShortCut covers the chain's short cut for a Bytes of one
// block (writeBlock on an empty chain, readOnly): the bytes, the counts of
// the pool and of a budget, the wipe of ZeroOnFree, and the free lists
// afterwards, with the long paths around it (room in the last block, a
// read that leaves bytes behind).
func TestOneBlockShortCut(t *testing.T) {
	const bs = 64
	for _, zero := range []bool{false, true} {
		t.Run(fmt.Sprintf("ZeroOnFree=%v", zero), func(t *testing.T) {
			p, err := New(Config{MaxMemory: 8 * bs, BlockSize: bs, ZeroOnFree: zero})
			require.NoError(t, err)
			checkNoLeak(t, p)
			bg := p.NewBudget(2 * bs)
			for _, tc := range []struct {
				name   string
				writes []int // sizes of the writes, into an empty Bytes
				reads  []int // len(p) of the reads that follow
				got    []int // what each read returns
			}{
				{"whole", []int{20}, []int{20, 1}, []int{20, 0}},
				{"read into more", []int{20}, []int{bs}, []int{20}},
				{"full block", []int{bs}, []int{bs}, []int{bs}},
				{"rest after a short read", []int{20}, []int{5, bs}, []int{5, 15}},
				{"into the room, then whole", []int{20, 30}, []int{bs}, []int{50}},
				{"two blocks, then the last alone", []int{bs, 10}, []int{bs, 10}, []int{bs, 10}},
			} {
				for _, owner := range []string{"pool", "budget"} {
					t.Run(tc.name+"/"+owner, func(t *testing.T) {
						b := p.NewBytes(0)
						if owner == "budget" {
							b = bg.NewBytes(0)
						}
						defer b.Free()
						var want []byte
						for i, n := range tc.writes {
							data := fill(n, byte(10*i+1))
							writeAll(t, b, data)
							want = append(want, data...)
						}
						blocks := (len(want) + bs - 1) / bs
						assert.Equal(t, blocks, p.Stats().BlocksInUse)
						if owner == "budget" {
							assert.Equal(t, blocks, bg.Stats().BlocksInUse)
						}
						for i, n := range tc.reads {
							buf := make([]byte, n)
							k, err := b.Read(buf)
							if tc.got[i] == 0 {
								require.ErrorIs(t, err, io.EOF)
							} else {
								require.NoError(t, err)
							}
							require.Equal(t, tc.got[i], k, "read %d", i)
							require.Equal(t, want[:k], buf[:k], "read %d", i)
							want = want[k:]
						}
						assert.Equal(t, 0, b.Len())
						assert.Equal(t, 0, p.Stats().BlocksInUse)
						assert.Equal(t, 0, bg.Stats().BlocksInUse)
						if zero {
							for s := range p.shardMask + 1 {
								if v := p.local[s].hot.Load(); v != 0 {
									assert.Equal(t, make([]byte, bs), p.block(v-1), "hot block %d not wiped", v-1)
								}
							}
						}
					})
				}
			}
			requireAllFree(t, p)
		})
	}
}
