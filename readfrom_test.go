package bytespool

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The ReadFrom of Bytes and of PipeWriter never needs a block that its data
// does not fill (SPEC item 13): it reads into the room of the last block
// first, and takes a new block only once bytes have come for it.

// readFromPool is a pool of blocks blocks of bs bytes (0: unlimited), with
// ZeroOnFree as given, checked for leaks when the test ends; with ZeroOnFree
// it also checks that every block carved is wiped by then.
func readFromPool(t *testing.T, zero bool, blocks, bs int) *BytesPool {
	t.Helper()
	p, err := New(Config{MaxMemory: blocks * bs, BlockSize: bs, ZeroOnFree: zero})
	require.NoError(t, err)
	if zero {
		t.Cleanup(func() {
			if p.Stats().BlocksInUse == 0 {
				assert.True(t, allBlocks(p, func(blk []byte) bool { return isAll(blk, 0) }), "a freed block was not wiped")
			}
		})
	}
	checkNoLeak(t, p)
	return p
}

// forZero runs f as a subtest with ZeroOnFree off and on.
func forZero(t *testing.T, f func(t *testing.T, zero bool)) {
	for _, zero := range []bool{false, true} {
		t.Run(fmt.Sprintf("ZeroOnFree=%v", zero), func(t *testing.T) { f(t, zero) })
	}
}

// chanReader is a source that blocks in Read until the test gives it
// something: each Read announces its buffer size on asked, then returns
// what it receives on give (a nil slice: 0, io.EOF).
type chanReader struct {
	asked chan int
	give  chan []byte
}

func newChanReader() *chanReader {
	return &chanReader{asked: make(chan int, 1), give: make(chan []byte)}
}

func (c *chanReader) Read(p []byte) (int, error) {
	c.asked <- len(p)
	d := <-c.give
	if d == nil {
		return 0, io.EOF
	}
	return copy(p, d), nil
}

// waitAsked waits until the source is in Read and returns its buffer size.
func (c *chanReader) waitAsked(t *testing.T) int {
	t.Helper()
	select {
	case n := <-c.asked:
		return n
	case <-time.After(waitTimeout):
		require.FailNow(t, "ReadFrom did not read its source")
		return 0
	}
}

// ---------------------------------------------------------------------------
// Bytes

func TestReadFromFitsOneBlockPool(t *testing.T) {
	forZero(t, func(t *testing.T, zero bool) {
		const bs = 64
		p := readFromPool(t, zero, 1, bs)
		b := p.NewBytes(0)
		defer b.Free()
		var n int64
		var err error
		within(t, "ReadFrom", func() { n, err = b.ReadFrom(noLen{strings.NewReader("hello")}) })
		require.NoError(t, err)
		assert.Equal(t, int64(5), n)
		assert.Equal(t, 1, p.Stats().BlocksInUse)
		assert.Equal(t, "hello", string(readAll(t, b)))
	})
}

func TestReadFromPoolHeldElsewhere(t *testing.T) {
	forZero(t, func(t *testing.T, zero bool) {
		const bs = 64
		p := readFromPool(t, zero, 4, bs)
		others := holdBlocks(t, p, 3)
		defer func() {
			for _, o := range others {
				o.Free()
			}
		}()
		b := p.NewBytes(0)
		defer b.Free()
		var n int64
		var err error
		within(t, "ReadFrom with one free block", func() { n, err = b.ReadFrom(noLen{strings.NewReader("hello")}) })
		require.NoError(t, err)
		assert.Equal(t, int64(5), n)
		assert.Equal(t, 4, p.Stats().BlocksInUse)

		// The pool full, b's block full: a source at its end needs
		// nothing.
		writeAll(t, b, fill(bs-5, 2))
		within(t, "ReadFrom of an empty source", func() { n, err = b.ReadFrom(noLen{strings.NewReader("")}) })
		require.NoError(t, err)
		assert.Equal(t, int64(0), n)
		assert.Equal(t, 0, p.Stats().Waiters)
		assert.Equal(t, append([]byte("hello"), fill(bs-5, 2)...), readAll(t, b))
	})
}

func TestReadFromExactlyOneBlock(t *testing.T) {
	forZero(t, func(t *testing.T, zero bool) {
		for _, bs := range []int{64, 4096} { // below and above the probe's 512 bytes
			t.Run(fmt.Sprint(bs), func(t *testing.T) {
				p := readFromPool(t, zero, 1, bs)
				b := p.NewBytes(0)
				defer b.Free()
				data := fill(bs, 3)
				var n int64
				var err error
				// With a Len method r says it is at its end; without,
				// ReadFrom cannot know without reading a byte it has
				// nowhere to put, so it stops with ErrPoolTooSmall.
				within(t, "ReadFrom", func() { n, err = b.ReadFrom(bytes.NewReader(data)) })
				require.NoError(t, err)
				assert.Equal(t, int64(bs), n)
				assert.Equal(t, 1, p.Stats().BlocksInUse)
				assert.Equal(t, data, readAll(t, b))

				src := bytes.NewReader(append(data, 'x'))
				within(t, "ReadFrom", func() { n, err = b.ReadFrom(noLen{src}) })
				require.ErrorIs(t, err, ErrPoolTooSmall)
				assert.Equal(t, int64(bs), n)
				assert.Equal(t, 1, src.Len(), "ReadFrom read past what b could take")
				assert.Equal(t, data, readAll(t, b))
			})
		}
	})
}

// An idle ReadFrom, waiting on its source, holds no block: on an empty
// Bytes none, and Free ends it with ErrClosed once the source returns.
func TestReadFromIdleHoldsNoBlock(t *testing.T) {
	forZero(t, func(t *testing.T, zero bool) {
		const bs = 64
		p := readFromPool(t, zero, 2, bs)
		b := p.NewBytes(0)
		src := newChanReader()
		ch := async(func() (int64, error) { return b.ReadFrom(src) })
		src.waitAsked(t)
		assert.Equal(t, 0, p.Stats().BlocksInUse, "an idle ReadFrom holds a block")
		within(t, "Free while ReadFrom waits on its source", b.Free)
		src.give <- []byte("late")
		r := await(t, "ReadFrom", ch)
		assert.ErrorIs(t, r.err, ErrClosed)
		assert.Equal(t, int64(0), r.n)
		assert.Equal(t, 0, p.Stats().BlocksInUse)
	})
}

// An idle ReadFrom with room in b's last block reads into its own buffer,
// not the room: a Write meanwhile goes ahead, into the room, and the bytes
// of the read in flight come after it (see Bytes.ReadFrom).
func TestReadFromIdleWithRoomLetsWritesThrough(t *testing.T) {
	forZero(t, func(t *testing.T, zero bool) {
		const bs = 64
		p := readFromPool(t, zero, 1, bs)
		b := p.NewBytes(0)
		defer b.Free()
		writeAll(t, b, []byte("abc"))
		src := newChanReader()
		ch := async(func() (int64, error) { return b.ReadFrom(src) })
		assert.Equal(t, bs-3, src.waitAsked(t), "the read goes into the room of the last block")
		assert.Equal(t, 1, p.Stats().BlocksInUse, "an idle ReadFrom holds a block")
		within(t, "Write while ReadFrom waits on its source", func() { writeAll(t, b, []byte("XYZ")) })
		src.give <- []byte("de")
		src.waitAsked(t)
		src.give <- nil
		r := await(t, "ReadFrom", ch)
		require.NoError(t, r.err)
		assert.Equal(t, int64(2), r.n)
		assert.Equal(t, 1, p.Stats().BlocksInUse)
		assert.Equal(t, "abcXYZde", string(readAll(t, b)))
	})
}

// countingReader is a source that records the pool's blocks in use at each
// Read.
type countingReader struct {
	r     io.Reader
	p     *BytesPool
	inUse []int
}

func (c *countingReader) Read(q []byte) (int, error) {
	c.inUse = append(c.inUse, c.p.Stats().BlocksInUse)
	return c.r.Read(q)
}

func TestReadFromIntoRoom(t *testing.T) {
	forZero(t, func(t *testing.T, zero bool) {
		const bs = 64
		p := readFromPool(t, zero, 1, bs)
		b := p.NewBytes(0)
		defer b.Free()
		writeAll(t, b, []byte("abc"))
		src := &countingReader{r: strings.NewReader("de"), p: p}
		var n int64
		var err error
		within(t, "ReadFrom", func() { n, err = b.ReadFrom(noLen{src}) })
		require.NoError(t, err)
		assert.Equal(t, int64(2), n)
		assert.Equal(t, []int{1, 1}, src.inUse, "blocks in use at each read of the source")
		assert.Equal(t, 1, p.Stats().BlocksInUse)
		assert.Equal(t, "abcde", string(readAll(t, b)))

		// A source with a Len method likewise.
		writeAll(t, b, []byte("abc"))
		within(t, "ReadFrom", func() { n, err = b.ReadFrom(strings.NewReader("de")) })
		require.NoError(t, err)
		assert.Equal(t, int64(2), n)
		assert.Equal(t, "abcde", string(readAll(t, b)))
	})
}

// Writes racing with a ReadFrom from a trickling source: each Write and
// each read stays in one piece, and the source's bytes stay in order.
func TestReadFromConcurrentWrites(t *testing.T) {
	const bs, writes = 64, 200
	p := readFromPool(t, false, 0, bs)
	b := p.NewBytes(0)
	defer b.Free()
	src := iotestOneByte{data: []byte(strings.Repeat("abcdefghij", 50))}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range writes {
			if _, err := b.WriteString("XYZ"); err != nil {
				panic(err)
			}
		}
	}()
	n, err := b.ReadFrom(&src)
	require.NoError(t, err)
	assert.Equal(t, int64(500), n)
	wg.Wait()
	got := string(readAll(t, b))
	assert.Equal(t, writes, strings.Count(got, "XYZ"), "a Write was split")
	assert.Equal(t, strings.Repeat("abcdefghij", 50), strings.NewReplacer("X", "", "Y", "", "Z", "").Replace(got))
}

// iotestOneByte returns one byte per Read, yielding in between.
type iotestOneByte struct {
	data []byte
}

func (r *iotestOneByte) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(0)
	p[0] = r.data[0]
	r.data = r.data[1:]
	return 1, nil
}

// ---------------------------------------------------------------------------
// Bytes: partners that misbehave

func TestReadFromDataWithError(t *testing.T) {
	forZero(t, func(t *testing.T, zero bool) {
		const bs = 64
		p := readFromPool(t, zero, 2, bs)
		b := p.NewBytes(0)
		defer b.Free()
		for _, head := range []string{"", "abc"} { // a new block, the room
			writeAll(t, b, []byte(head))
			n, err := b.ReadFrom(readerFunc(func(q []byte) (int, error) { return copy(q, "12345"), errTest }))
			assert.ErrorIs(t, err, errTest)
			assert.Equal(t, int64(5), n)
			n, err = b.ReadFrom(readerFunc(func(q []byte) (int, error) { return copy(q, "678"), io.EOF }))
			assert.NoError(t, err)
			assert.Equal(t, int64(3), n)
			assert.Equal(t, head+"12345678", string(readAll(t, b)))
		}
	})
}

// A reader that reports a bad count, or panics, leaves b as the reads
// before left it, and no block is lost. The cases cover a read into the
// probe, into the room, and into the rest of a new block after a full
// probe (blocks larger than the probe's 512 bytes).
func TestReadFromBadReaders(t *testing.T) {
	const bs = 1024
	type step func(q []byte) (int, error)
	fillAll := func(q []byte) (int, error) { return copy(q, bytes.Repeat([]byte{'f'}, len(q))), nil }
	bad := []struct {
		name  string
		read  step
		count string // the count the panic names; "" for the reader's own panic (every buffer here is 512 bytes)
	}{
		{"count -1", func([]byte) (int, error) { return -1, nil }, "count -1 "},
		{"count len(p)+1", func(q []byte) (int, error) { return len(q) + 1, nil }, "count 513 "},
		{"count 1<<40 with EOF", func([]byte) (int, error) { return 1 << 40, io.EOF }, fmt.Sprintf("count %d ", 1<<40)},
		{"panics", func(q []byte) (int, error) { copy(q, "junk"); panic(errTest) }, ""},
	}
	forZero(t, func(t *testing.T, zero bool) {
		for _, bc := range bad {
			for _, c := range []struct {
				where string
				head  int    // bytes written first
				good  []step // reads before the bad one
				kept  int    // bytes those reads leave in b
			}{
				{"probe", 0, nil, 0},
				{"room", 10, nil, 0},
				{"rest of a new block", 0, []step{fillAll}, 512},
			} {
				t.Run(c.where+"/"+bc.name, func(t *testing.T) {
					p := readFromPool(t, zero, 4, bs)
					b := p.NewBytes(0)
					writeAll(t, b, fill(c.head, 1))
					calls := 0
					got := fmt.Sprint(func() (v any) {
						defer func() { v = recover() }()
						_, _ = b.ReadFrom(readerFunc(func(q []byte) (int, error) {
							calls++
							if calls <= len(c.good) {
								return c.good[calls-1](q)
							}
							return bc.read(q)
						}))
						return nil
					}())
					if bc.count == "" {
						assert.Equal(t, errTest.Error(), got)
					} else {
						assert.Contains(t, got, "bytespool: ReadFrom: reader returned "+bc.count+"for a buffer of 512 bytes")
					}
					want := c.head + c.kept
					assert.Equal(t, want, b.Len())
					assert.Equal(t, (want+bs-1)/bs, p.Stats().BlocksInUse, "blocks leaked")
					// b still works, and takes exactly what fits.
					n, err := b.ReadFrom(strings.NewReader("more"))
					require.NoError(t, err)
					assert.Equal(t, int64(4), n)
					assert.Equal(t, want+4, b.Len())
					b.Free()
					assert.Equal(t, 0, p.Stats().BlocksInUse)
					requireAllFree(t, p)
				})
			}
		}
	})
}

// A source that returns 0, nil forever keeps ReadFrom reading, holding no
// block, until Free ends it.
func TestReadFromZeroNilForeverEndedByFree(t *testing.T) {
	forZero(t, func(t *testing.T, zero bool) {
		const bs = 64
		for _, head := range []int{0, 10} {
			t.Run(fmt.Sprint(head), func(t *testing.T) {
				p := readFromPool(t, zero, 2, bs)
				b := p.NewBytes(0)
				writeAll(t, b, fill(head, 1))
				var calls atomic.Int64
				ch := async(func() (int64, error) {
					return b.ReadFrom(readerFunc(func([]byte) (int, error) {
						calls.Add(1)
						return 0, nil
					}))
				})
				eventually(t, func() bool { return calls.Load() > 100 })
				assert.Equal(t, (head+bs-1)/bs, p.Stats().BlocksInUse)
				b.Free()
				r := await(t, "ReadFrom", ch)
				assert.ErrorIs(t, r.err, ErrClosed)
				assert.Equal(t, int64(0), r.n)
				assert.Equal(t, 0, p.Stats().BlocksInUse)
			})
		}
	})
}

// ---------------------------------------------------------------------------
// PipeWriter

// forPipes runs f as a subtest for an unbounded pipe and one bounded to
// maxBuffered, with ZeroOnFree off and on.
func forPipes(t *testing.T, maxBuffered int, f func(t *testing.T, zero bool, maxBuffered int)) {
	forZero(t, func(t *testing.T, zero bool) {
		for _, m := range []int{0, maxBuffered} {
			t.Run(fmt.Sprintf("maxBuffered=%d", m), func(t *testing.T) { f(t, zero, m) })
		}
	})
}

// pipeDrain closes the writer and reads everything the reader gets.
func pipeDrain(t *testing.T, r *PipeReader, w *PipeWriter) []byte {
	t.Helper()
	require.NoError(t, w.Close())
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	return got
}

func TestPipeReadFromFitsOneBlockPool(t *testing.T) {
	const bs = 64
	forPipes(t, 2*bs, func(t *testing.T, zero bool, maxBuffered int) {
		p := readFromPool(t, zero, 1, bs)
		r, w := p.NewPipe(maxBuffered)
		var n int64
		var err error
		within(t, "ReadFrom", func() { n, err = w.ReadFrom(noLen{strings.NewReader("hello")}) })
		require.NoError(t, err)
		assert.Equal(t, int64(5), n)
		assert.Equal(t, 1, p.Stats().BlocksInUse)
		assert.Equal(t, "hello", string(pipeDrain(t, r, w)))
		pipeCheckNoLeak(t, p, r, w)
	})
}

// A source that ends at a block boundary needs no block there, when the
// pool has one block, or when the rest of the pool is held elsewhere.
func TestPipeReadFromEOFAtBoundary(t *testing.T) {
	const bs = 64
	forPipes(t, 2*bs, func(t *testing.T, zero bool, maxBuffered int) {
		for _, held := range []int{0, 3} {
			t.Run(fmt.Sprintf("%d of %d blocks held elsewhere", held, held+1), func(t *testing.T) {
				p := readFromPool(t, zero, held+1, bs)
				others := holdBlocks(t, p, held)
				r, w := p.NewPipe(maxBuffered)
				data := fill(bs, 4)
				var n int64
				var err error
				within(t, "ReadFrom", func() { n, err = w.ReadFrom(noLen{bytes.NewReader(data)}) })
				require.NoError(t, err)
				assert.Equal(t, int64(bs), n)
				assert.Equal(t, held+1, p.Stats().BlocksInUse)
				// And an empty source, with the pool full.
				within(t, "ReadFrom of an empty source", func() { n, err = w.ReadFrom(noLen{strings.NewReader("")}) })
				require.NoError(t, err)
				assert.Equal(t, int64(0), n)
				assert.Equal(t, 0, p.Stats().Waiters)
				assert.Equal(t, data, pipeDrain(t, r, w))
				for _, o := range others {
					o.Free()
				}
				pipeCheckNoLeak(t, p, r, w)
			})
		}
	})
}

// An idle ReadFrom at a block boundary holds no block; closing the reader
// ends it once the source returns.
func TestPipeReadFromIdleHoldsNoBlock(t *testing.T) {
	const bs = 64
	forPipes(t, 2*bs, func(t *testing.T, zero bool, maxBuffered int) {
		p := readFromPool(t, zero, 2, bs)
		r, w := p.NewPipe(maxBuffered)
		src := newChanReader()
		ch := async(func() (int64, error) { return w.ReadFrom(src) })
		src.waitAsked(t)
		assert.Equal(t, 0, p.Stats().BlocksInUse, "an idle ReadFrom holds a block")
		src.give <- []byte("first")
		src.waitAsked(t) // now into the rest of the block, which holds data
		assert.Equal(t, 1, p.Stats().BlocksInUse)
		buf := make([]byte, 5)
		_, err := io.ReadFull(r, buf)
		require.NoError(t, err)
		assert.Equal(t, "first", string(buf))
		require.NoError(t, r.Close())
		src.give <- []byte("late")
		res := await(t, "ReadFrom", ch)
		assert.ErrorIs(t, res.err, io.ErrClosedPipe)
		assert.Equal(t, int64(5), res.n)
		pipeCheckNoLeak(t, p, r, w)
	})
}

func TestPipeReadFromBadReaders(t *testing.T) {
	const bs = 1024
	forPipes(t, 4*bs, func(t *testing.T, zero bool, maxBuffered int) {
		for _, c := range []struct {
			name string
			head int // bytes written first: 0 reads into the probe, else into the tail
			read func(q []byte) (int, error)
			msg  string
		}{
			{"probe, count -1", 0, func([]byte) (int, error) { return -1, nil }, "count -1 for a buffer of 512 bytes"},
			{"probe, count too big", 0, func(q []byte) (int, error) { return len(q) + 1, nil }, "count 513 for a buffer of 512 bytes"},
			{"probe, panics", 0, func(q []byte) (int, error) { copy(q, "junk"); panic(errTest) }, ""},
			{"tail, count -1", 10, func([]byte) (int, error) { return -1, io.EOF }, "count -1 for a buffer of 1014 bytes"},
			{"tail, panics", 10, func(q []byte) (int, error) { copy(q, "junk"); panic(errTest) }, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				p := readFromPool(t, zero, 4, bs)
				r, w := p.NewPipe(maxBuffered)
				head := fill(c.head, 5)
				_, err := w.Write(head)
				require.NoError(t, err)
				got := fmt.Sprint(func() (v any) {
					defer func() { v = recover() }()
					_, _ = w.ReadFrom(readerFunc(c.read))
					return nil
				}())
				if c.msg == "" {
					assert.Equal(t, errTest.Error(), got)
				} else {
					assert.Contains(t, got, c.msg)
				}
				// The pipe still works, and holds what it held.
				n, err := w.ReadFrom(strings.NewReader("more"))
				require.NoError(t, err)
				assert.Equal(t, int64(4), n)
				assert.Equal(t, append(head, "more"...), pipeDrain(t, r, w))
				pipeCheckNoLeak(t, p, r, w)
				requireAllFree(t, p)
			})
		}
	})
}

func TestPipeReadFromDataWithError(t *testing.T) {
	const bs = 64
	forPipes(t, 2*bs, func(t *testing.T, zero bool, maxBuffered int) {
		p := readFromPool(t, zero, 2, bs)
		r, w := p.NewPipe(maxBuffered)
		n, err := w.ReadFrom(readerFunc(func(q []byte) (int, error) { return copy(q, "12345"), errTest }))
		assert.ErrorIs(t, err, errTest)
		assert.Equal(t, int64(5), n)
		n, err = w.ReadFrom(readerFunc(func(q []byte) (int, error) { return copy(q, "678"), io.EOF }))
		assert.NoError(t, err)
		assert.Equal(t, int64(3), n)
		assert.Equal(t, "12345678", string(pipeDrain(t, r, w)))
		pipeCheckNoLeak(t, p, r, w)
	})
}

// A source that returns 0, nil forever keeps ReadFrom reading, holding no
// block, until the reader's Close ends it.
func TestPipeReadFromZeroNilForeverEndedByClose(t *testing.T) {
	const bs = 64
	forPipes(t, 2*bs, func(t *testing.T, zero bool, maxBuffered int) {
		p := readFromPool(t, zero, 2, bs)
		r, w := p.NewPipe(maxBuffered)
		var calls atomic.Int64
		ch := async(func() (int64, error) {
			return w.ReadFrom(readerFunc(func([]byte) (int, error) {
				calls.Add(1)
				return 0, nil
			}))
		})
		eventually(t, func() bool { return calls.Load() > 100 })
		assert.Equal(t, 0, p.Stats().BlocksInUse)
		require.NoError(t, r.Close())
		res := await(t, "ReadFrom", ch)
		assert.ErrorIs(t, res.err, io.ErrClosedPipe)
		assert.Equal(t, int64(0), res.n)
		pipeCheckNoLeak(t, p, r, w)
	})
}

// ReadFrom from a source without a Len method allocates nothing in steady
// state: its small buffer is the Bytes header's, or the pipe's.
func TestReadFromZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race sync.Pool drops Puts on purpose, so allocation counts are meaningless")
	}
	p := readFromPool(t, false, 256, 4096)
	src := fill(10<<10, 6)
	r := bytes.NewReader(nil)
	hidden := io.Reader(noLen{r}) // boxed once, here
	b := p.NewBytes(0)
	defer b.Free()
	allocs := testing.AllocsPerRun(200, func() {
		r.Reset(src)
		if n, err := b.ReadFrom(hidden); n != int64(len(src)) || err != nil {
			panic(err)
		}
		b.Reset()
	})
	assert.Equal(t, 0.0, allocs, "Bytes.ReadFrom allocates")

	pr, pw := p.NewPipe(64 << 10)
	out := make([]byte, len(src))
	allocs = testing.AllocsPerRun(200, func() {
		r.Reset(src)
		if n, err := pw.ReadFrom(hidden); n != int64(len(src)) || err != nil {
			panic(err)
		}
		if _, err := io.ReadFull(pr, out); err != nil {
			panic(err)
		}
	})
	assert.Equal(t, 0.0, allocs, "PipeWriter.ReadFrom allocates")
	pipeCheckNoLeak(t, p, pr, pw)
}
