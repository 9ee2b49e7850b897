package bytespool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pipeCheckNoLeak closes both ends and checks that the pool holds no block
// and that nobody waits any more.
func pipeCheckNoLeak(t testing.TB, pool *BytesPool, r *PipeReader, w *PipeWriter) {
	t.Helper()
	assert.NoError(t, w.Close())
	assert.NoError(t, r.Close())
	st := pool.Stats()
	require.Equal(t, 0, st.BlocksInUse, "blocks still in use after both ends closed")
	require.Equal(t, 0, st.Waiters, "goroutines still waiting after both ends closed")
}

// pipeRandomData returns n reproducible pseudo-random bytes.
func pipeRandomData(n int, seed uint64) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// pipeTransferSize is the size of the big transfers: 64 MiB, or 8 MiB in
// short mode and under the race detector.
func pipeTransferSize() int {
	if testing.Short() || raceEnabled {
		return 8 << 20
	}
	return 64 << 20
}

// pipeWriteChunks writes data to w in Writes of random sizes in
// [1, maxChunk], then closes w.
func pipeWriteChunks(w *PipeWriter, data []byte, maxChunk int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 1))
	for off := 0; off < len(data); {
		k := min(1+rng.IntN(maxChunk), len(data)-off)
		n, err := w.Write(data[off : off+k])
		if err != nil {
			return fmt.Errorf("Write of %d bytes at offset %d: %d, %w", k, off, n, err)
		}
		if n != k {
			return fmt.Errorf("Write of %d bytes at offset %d returned %d, nil", k, off, n)
		}
		off += k
	}
	return w.Close()
}

// pipeReadChunks reads r to io.EOF in Reads of random sizes in [1,
// maxChunk], writing what it gets to dst and calling after (if not nil)
// after each Read.
func pipeReadChunks(r *PipeReader, dst io.Writer, maxChunk int, seed uint64, after func()) (int64, error) {
	rng := rand.New(rand.NewPCG(seed, 2))
	buf := make([]byte, maxChunk)
	var total int64
	for {
		k := 1 + rng.IntN(maxChunk)
		n, err := r.Read(buf[:k])
		if n < 0 || n > k {
			return total, fmt.Errorf("Read of %d bytes returned count %d", k, n)
		}
		_, _ = dst.Write(buf[:n])
		total += int64(n)
		if after != nil {
			after()
		}
		if err == io.EOF {
			if n != 0 {
				return total, fmt.Errorf("Read returned %d bytes with io.EOF", n)
			}
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("Read after %d bytes: %w", total, err)
		}
		if n == 0 {
			return total, fmt.Errorf("Read of %d bytes returned 0, nil", k)
		}
	}
}

// pipeChunkReader is a source for PipeWriter.ReadFrom that returns its data
// in reads of random sizes. It has no WriteTo method, so io.Copy(w, src)
// goes through w.ReadFrom.
type pipeChunkReader struct {
	data   []byte
	rng    *rand.Rand
	max    int
	onRead func() // called at the start of every Read, if not nil
}

func newPipeChunkReader(data []byte, maxChunk int, seed uint64) *pipeChunkReader {
	return &pipeChunkReader{data: data, rng: rand.New(rand.NewPCG(seed, 3)), max: maxChunk}
}

func (c *pipeChunkReader) Read(p []byte) (int, error) {
	if c.onRead != nil {
		c.onRead()
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), 1+c.rng.IntN(c.max), len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

// pipeHashWriter is a destination for PipeReader.WriteTo that hashes what
// it gets. It has no ReadFrom method.
type pipeHashWriter struct {
	h       hash.Hash
	n       int64
	onWrite func() // called at the start of every Write, if not nil
}

func (h *pipeHashWriter) Write(p []byte) (int, error) {
	if h.onWrite != nil {
		h.onWrite()
	}
	h.n += int64(len(p))
	return h.h.Write(p)
}

// pipeTransferModes are the ways to move data through a pipe: by Write and
// Read calls, or by io.Copy, which takes PipeWriter.ReadFrom from a source
// without WriteTo, and PipeReader.WriteTo to any destination.
var pipeTransferModes = []struct {
	name              string
	readFrom, writeTo bool
}{
	{"Write+Read", false, false},
	{"ReadFrom+Read", true, false},
	{"Write+WriteTo", false, true},
	{"ReadFrom+WriteTo", true, true},
}

// pipeTransfer moves data through r and w with random chunk sizes in
// [1, maxChunk], in the given mode, and returns the sha256 and the count of
// what came out. probe (if not nil) is called on every step of both sides.
func pipeTransfer(t *testing.T, r *PipeReader, w *PipeWriter, data []byte, maxChunk int, readFrom, writeTo bool, probe func()) ([]byte, int64) {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		if !readFrom {
			werr <- pipeWriteChunks(w, data, maxChunk, 7)
			return
		}
		src := newPipeChunkReader(data, maxChunk, 7)
		src.onRead = probe
		n, err := io.Copy(w, src)
		if err == nil && n != int64(len(data)) {
			err = fmt.Errorf("io.Copy(w, src) = %d, nil; want %d", n, len(data))
		}
		if err == nil {
			err = w.Close()
		}
		werr <- err
	}()

	dst := &pipeHashWriter{h: sha256.New(), onWrite: probe}
	var n int64
	var err error
	if writeTo {
		n, err = io.Copy(dst, r)
	} else {
		n, err = pipeReadChunks(r, dst, maxChunk, 11, probe)
	}
	if err != nil {
		// Unblock the writer before failing.
		_ = r.CloseWithError(err)
	}
	require.NoError(t, err)
	require.NoError(t, <-werr)
	require.Equal(t, n, dst.n)
	return dst.h.Sum(nil), n
}

func TestPipeTransferRandomChunks(t *testing.T) {
	size := pipeTransferSize()
	data := pipeRandomData(size, 1)
	want := sha256.Sum256(data)
	for _, m := range pipeTransferModes {
		t.Run(m.name, func(t *testing.T) {
			pool := testPool(t, 8<<20, 4096)
			r, w := pool.NewPipe(1 << 20)
			sum, n := pipeTransfer(t, r, w, data, 256<<10, m.readFrom, m.writeTo, nil)
			require.Equal(t, int64(size), n)
			require.Equal(t, want[:], sum)
			pipeCheckNoLeak(t, pool, r, w)
		})
	}
}

// pipeMaxInt records the largest value it sees.
type pipeMaxInt struct{ v atomic.Int64 }

func (m *pipeMaxInt) see(x int) {
	for {
		old := m.v.Load()
		if int64(x) <= old || m.v.CompareAndSwap(old, int64(x)) {
			return
		}
	}
}

// TestPipeBlocksBound samples Stats().BlocksInUse of a dedicated, unlimited
// pool during transfers: the pipe must never hold more than
// ceil(maxBuffered/blockSize) blocks plus one partial block at each end.
func TestPipeBlocksBound(t *testing.T) {
	small := testing.Short() || raceEnabled
	cases := []struct {
		maxBuffered, blockSize, size int
	}{
		{1 << 20, 4096, 8 << 20},
		{4096, 4096, 1 << 20},     // exactly one block
		{1000, 4096, 256 << 10},   // smaller than one block
		{10000, 4096, 1 << 20},    // not a multiple of the block size
		{5000, 1024, 512 << 10},   // not a multiple, several blocks
		{100, 64, 64 << 10},       // tiny blocks
		{3 * 512, 512, 256 << 10}, // a multiple of a small block
	}
	for _, tc := range cases {
		size := tc.size
		if small {
			size = min(size, 1<<20)
		}
		bound := (tc.maxBuffered+tc.blockSize-1)/tc.blockSize + 1
		data := pipeRandomData(size, uint64(tc.maxBuffered))
		want := sha256.Sum256(data)
		for _, m := range pipeTransferModes {
			name := fmt.Sprintf("max=%d/bs=%d/%s", tc.maxBuffered, tc.blockSize, m.name)
			t.Run(name, func(t *testing.T) {
				pool := testPool(t, 0, tc.blockSize)
				r, w := pool.NewPipe(tc.maxBuffered)
				var seen pipeMaxInt
				probe := func() { seen.see(pool.Stats().BlocksInUse) }
				stop := make(chan struct{})
				sampled := make(chan struct{})
				go func() {
					defer close(sampled)
					for {
						select {
						case <-stop:
							return
						default:
						}
						probe()
						runtime.Gosched()
					}
				}()
				maxChunk := min(256<<10, 3*tc.maxBuffered+7)
				sum, n := pipeTransfer(t, r, w, data, maxChunk, m.readFrom, m.writeTo, probe)
				close(stop)
				<-sampled
				require.Equal(t, int64(size), n)
				require.Equal(t, want[:], sum)
				assert.LessOrEqual(t, int(seen.v.Load()), bound,
					"BlocksInUse passed ceil(maxBuffered/blockSize)+1 = %d", bound)
				assert.Positive(t, int(seen.v.Load()))
				pipeCheckNoLeak(t, pool, r, w)
			})
		}
	}
}

// pipeGateWriter blocks in its first Write until release is closed.
type pipeGateWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	buf     bytes.Buffer
}

func (g *pipeGateWriter) Write(p []byte) (int, error) {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return g.buf.Write(p)
}

// TestPipeWriteToKeepsBound: while WriteTo is writing out what it took from
// the pipe, those blocks are still held by the pipe, so a writer must not
// be able to add blocks beyond the bound meanwhile.
func TestPipeWriteToKeepsBound(t *testing.T) {
	const bs, maxBuffered = 1024, 2048
	const bound = maxBuffered/bs + 1
	pool := testPool(t, 0, bs)
	r, w := pool.NewPipe(maxBuffered)
	data := pipeRandomData(2*maxBuffered, 2)

	n, err := w.Write(data[:maxBuffered])
	require.NoError(t, err)
	require.Equal(t, maxBuffered, n)

	dst := &pipeGateWriter{entered: make(chan struct{}), release: make(chan struct{})}
	copied := make(chan error, 1)
	var total int64
	go func() {
		var err error
		total, err = r.WriteTo(dst)
		copied <- err
	}()
	select {
	case <-dst.entered:
	case <-time.After(waitTimeout):
		require.FailNow(t, "WriteTo never wrote to its destination")
	}

	// WriteTo holds the first maxBuffered bytes in flight; a second write
	// of maxBuffered bytes must wait rather than take more blocks.
	wrote := async(func() (int, error) { return w.Write(data[maxBuffered:]) })
	var early *result
	require.Eventually(t, func() bool {
		select {
		case res := <-wrote:
			early = &res
			return true
		default:
			return pool.Stats().Waiters == 1
		}
	}, waitTimeout, time.Millisecond)
	assert.Nil(t, early, "the second Write did not wait while WriteTo held %d bytes in flight", maxBuffered)
	assert.LessOrEqual(t, pool.Stats().BlocksInUse, bound,
		"the pipe holds more than ceil(maxBuffered/blockSize)+1 blocks while WriteTo is in flight")

	close(dst.release)
	if early == nil {
		res := await(t, "the second Write", wrote)
		require.NoError(t, res.err)
		require.Equal(t, int64(maxBuffered), res.n)
	}
	require.NoError(t, w.Close())
	select {
	case err := <-copied:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		require.FailNow(t, "WriteTo did not return after the writer closed")
	}
	require.Equal(t, int64(len(data)), total)
	require.Equal(t, data, dst.buf.Bytes())
	pipeCheckNoLeak(t, pool, r, w)
}

// pipeStepReader is a source for ReadFrom driven step by step by the test:
// every Read reports its buffer size on asked, then returns the count it
// receives on give (negative: io.EOF).
type pipeStepReader struct {
	asked chan int
	give  chan int
	data  []byte
	off   int
}

func (s *pipeStepReader) Read(p []byte) (int, error) {
	s.asked <- len(p)
	k := <-s.give
	if k < 0 {
		return 0, io.EOF
	}
	copy(p[:k], s.data[s.off:])
	s.off += k
	return k, nil
}

// TestPipeReadFromKeepsBound drives ReadFrom step by step from a source that
// returns short reads of random sizes, with a reader that reads random
// amounts whenever ReadFrom waits for space, and checks at every step (each
// time ReadFrom reads its source, and each time it waits) that the pipe
// holds at most ceil(maxBuffered/blockSize)+1 blocks. Short reads leave the
// pipe with partial blocks, which is where the bound is at stake.
func TestPipeReadFromKeepsBound(t *testing.T) {
	for _, tc := range []struct{ maxBuffered, blockSize, size int }{
		{1024, 1024, 64 << 10},
		{2048, 1024, 64 << 10},
		{5000, 1024, 64 << 10},
		{200, 64, 16 << 10},
		{50, 64, 8 << 10},
	} {
		t.Run(fmt.Sprintf("max=%d/bs=%d", tc.maxBuffered, tc.blockSize), func(t *testing.T) {
			bound := (tc.maxBuffered+tc.blockSize-1)/tc.blockSize + 1
			pool := testPool(t, 0, tc.blockSize)
			r, w := pool.NewPipe(tc.maxBuffered)
			src := &pipeStepReader{asked: make(chan int), give: make(chan int), data: pipeRandomData(tc.size, 3)}
			res := async(func() (int64, error) { return w.ReadFrom(src) })
			rng := rand.New(rand.NewPCG(uint64(tc.maxBuffered), 5))
			worst, where := 0, ""
			check := func(at string) {
				if n := pool.Stats().BlocksInUse; n > worst {
					worst, where = n, at
				}
			}
			var got []byte
			buf := make([]byte, tc.maxBuffered)
			given := 0
			answer := func(asked int) {
				check(fmt.Sprintf("ReadFrom reading %d bytes from its source after %d bytes", asked, given))
				if given == len(src.data) {
					src.give <- -1
					return
				}
				k := min(1+rng.IntN(asked), len(src.data)-given)
				src.give <- k
				given += k
			}
			var out result
			for done, mustAsk := false, false; !done; {
				if mustAsk {
					// The read left room for bytes and a block, so
					// ReadFrom reads its source.
					select {
					case asked := <-src.asked:
						answer(asked)
						mustAsk = false
					case <-time.After(waitTimeout):
						require.FailNow(t, "ReadFrom did not read its source after a read made room")
					}
					continue
				}
				select {
				case asked := <-src.asked:
					answer(asked)
				case out = <-res:
					done = true
				default:
					if pool.Stats().Waiters != 1 || given == len(got) {
						// Not parked yet, or parked a moment ago and
						// about to run again: the pipe is empty.
						runtime.Gosched()
						continue
					}
					// ReadFrom waits for space: everything given to it is
					// buffered, so a read of at most that does not wait.
					check(fmt.Sprintf("ReadFrom waiting for space after %d bytes", given))
					k := 1 + rng.IntN(given-len(got))
					n, err := io.ReadFull(r, buf[:k])
					require.NoError(t, err)
					got = append(got, buf[:n]...)
					// ReadFrom reads its source again once the read made
					// room and left the buffered bytes on fewer blocks than
					// the bound, so that its own block fits too; until
					// then it keeps waiting.
					mustAsk = pool.Stats().BlocksInUse < bound
				}
			}
			require.NoError(t, out.err)
			require.Equal(t, int64(len(src.data)), out.n)
			assert.LessOrEqual(t, worst, bound,
				"blocks in use passed ceil(maxBuffered/blockSize)+1; the most were in use when %s", where)
			require.NoError(t, w.Close())
			rest, err := io.ReadAll(r)
			require.NoError(t, err)
			got = append(got, rest...)
			require.Equal(t, src.data, got)
			pipeCheckNoLeak(t, pool, r, w)
		})
	}
}

func TestPipeReadWaitsForWrite(t *testing.T) {
	pool := testPool(t, 1<<20, 4096)
	r, w := pool.NewPipe(0)
	buf := make([]byte, 100)
	res := async(func() (int, error) { return r.Read(buf) })
	waitWaiters(t, pool, 1)
	require.True(t, stillRunning(res), "the call returned while it should wait")

	n, err := w.Write([]byte("hello, pipe"))
	require.NoError(t, err)
	require.Equal(t, 11, n)
	got := await(t, "the waiting Read", res)
	require.NoError(t, got.err)
	require.Equal(t, int64(11), got.n)
	require.Equal(t, "hello, pipe", string(buf[:got.n]))
	require.Equal(t, 0, pool.Stats().Waiters)
	require.Equal(t, 0, pool.Stats().BlocksInUse, "the read emptied the block")
	pipeCheckNoLeak(t, pool, r, w)
}

func TestPipeWriteString(t *testing.T) {
	pool := testPool(t, 1<<20, 16)
	r, w := pool.NewPipe(0)
	n, err := w.WriteString("a string longer than one block")
	require.NoError(t, err)
	require.Equal(t, 30, n)
	require.NoError(t, w.Close())
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, "a string longer than one block", string(got))
	pipeCheckNoLeak(t, pool, r, w)
}

func TestPipeWriteBlocksWhileFull(t *testing.T) {
	const maxBuffered = 4096
	pool := testPool(t, 1<<20, 1024)
	r, w := pool.NewPipe(maxBuffered)
	data := pipeRandomData(maxBuffered+10, 4)

	n, err := w.Write(data[:maxBuffered])
	require.NoError(t, err, "a write of exactly maxBuffered bytes fits")
	require.Equal(t, maxBuffered, n)

	res := async(func() (int, error) { return w.Write(data[maxBuffered:]) })
	waitWaiters(t, pool, 1)
	require.True(t, stillRunning(res), "the call returned while it should wait")
	require.Equal(t, 4, pool.Stats().BlocksInUse)

	buf := make([]byte, 10)
	k, err := r.Read(buf)
	require.NoError(t, err)
	require.Equal(t, 10, k)
	require.Equal(t, data[:10], buf)
	got := await(t, "the waiting Write", res)
	require.NoError(t, got.err)
	require.Equal(t, int64(10), got.n)

	require.NoError(t, w.Close())
	rest, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, data[10:], rest)
	pipeCheckNoLeak(t, pool, r, w)
}

func TestPipeLargeWriteGoesInPieces(t *testing.T) {
	pool := testPool(t, 1<<20, 256)
	r, w := pool.NewPipe(1000)
	data := pipeRandomData(100_000, 5)
	res := async(func() (int, error) {
		n, err := w.Write(data)
		if err == nil {
			err = w.Close()
		}
		return n, err
	})
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	out := await(t, "the large Write", res)
	require.NoError(t, out.err, "a write larger than maxBuffered must not fail")
	require.Equal(t, int64(len(data)), out.n)
	require.Equal(t, data, got)
	pipeCheckNoLeak(t, pool, r, w)
}

// TestPipeUnboundedUsesWholePool: maxBuffered 0 is bounded by the pool
// only; a write of more blocks than the pool has goes through in pieces as
// the reader drains, without ErrPoolTooSmall.
func TestPipeUnboundedUsesWholePool(t *testing.T) {
	const bs, blocks = 1024, 4
	pool := testPool(t, blocks*bs, bs)
	r, w := pool.NewPipe(0)

	// With nobody reading, the writer fills the whole pool, then waits.
	data := pipeRandomData(10*bs+17, 6)
	res := async(func() (int, error) { return w.Write(data) })
	waitWaiters(t, pool, 1)
	require.True(t, stillRunning(res), "the call returned while it should wait")
	require.Equal(t, blocks, pool.Stats().BlocksInUse)

	got := make([]byte, 0, len(data))
	buf := make([]byte, 700)
	for len(got) < len(data) {
		n, err := r.Read(buf)
		require.NoError(t, err)
		got = append(got, buf[:n]...)
		require.LessOrEqual(t, pool.Stats().BlocksInUse, blocks)
	}
	out := await(t, "the Write larger than the pool", res)
	require.NoError(t, out.err)
	require.Equal(t, int64(len(data)), out.n)
	require.Equal(t, data, got)
	pipeCheckNoLeak(t, pool, r, w)
}

var (
	errPipeTest1 = errors.New("pipe test error 1")
	errPipeTest2 = errors.New("pipe test error 2")
)

// The writer's Close fails a Write that waits for blocks of a full pool,
// as it fails one that waits for room in the pipe.
func TestPipeWriterCloseWakesWriteWaitingForBlocks(t *testing.T) {
	const bs = 64
	pool := testPool(t, 2*bs, bs)
	hog := pool.NewBytes(0)
	writeAll(t, hog, fill(2*bs, 1))
	r, w := pool.NewPipe(0)
	ch := async(func() (int, error) { return w.Write(fill(100, 2)) })
	waitWaiters(t, pool, 1)
	require.True(t, stillRunning(ch))
	require.NoError(t, w.Close())
	res := await(t, "the Write waiting for blocks", ch)
	assert.ErrorIs(t, res.err, io.ErrClosedPipe)
	assert.Equal(t, int64(0), res.n)
	assert.Equal(t, 2, pool.Stats().BlocksInUse, "the hog's blocks only")
	hog.Free()
	pipeCheckNoLeak(t, pool, r, w)
}

func TestPipeCloseSemantics(t *testing.T) {
	const bs = 1024
	newPipe := func(t *testing.T, maxBuffered int) (*BytesPool, *PipeReader, *PipeWriter) {
		pool := testPool(t, 64*bs, bs)
		r, w := pool.NewPipe(maxBuffered)
		return pool, r, w
	}
	write := func(t *testing.T, w *PipeWriter, s string) {
		t.Helper()
		n, err := w.Write([]byte(s))
		require.NoError(t, err)
		require.Equal(t, len(s), n)
	}
	readAllThen := func(t *testing.T, r *PipeReader, want string, wantErr error) {
		t.Helper()
		buf := make([]byte, len(want)+10)
		n, err := io.ReadFull(r, buf[:len(want)])
		require.NoError(t, err)
		require.Equal(t, want, string(buf[:n]))
		for range 3 { // the final error repeats
			n, err = r.Read(buf)
			require.Equal(t, 0, n)
			require.Equal(t, wantErr, err)
		}
	}

	t.Run("writer Close: drain then io.EOF", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		write(t, w, "some data")
		require.NoError(t, w.Close())
		readAllThen(t, r, "some data", io.EOF)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("writer Close on an empty pipe wakes a waiting reader with io.EOF", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		res := async(func() (int, error) { return r.Read(make([]byte, 10)) })
		waitWaiters(t, pool, 1)
		require.NoError(t, w.Close())
		got := await(t, "the waiting Read", res)
		require.Equal(t, result{0, io.EOF}, got)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("writer CloseWithError: drain then the error", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		write(t, w, "more data than one block? no, a little")
		require.NoError(t, w.CloseWithError(errPipeTest1))
		readAllThen(t, r, "more data than one block? no, a little", errPipeTest1)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("writer CloseWithError wakes a waiting reader with the error", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		res := async(func() (int, error) { return r.Read(make([]byte, 10)) })
		waitWaiters(t, pool, 1)
		require.NoError(t, w.CloseWithError(errPipeTest1))
		require.Equal(t, result{0, errPipeTest1}, await(t, "the waiting Read", res))
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("writer CloseWithError(nil) is Close", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		write(t, w, "x")
		require.NoError(t, w.CloseWithError(nil))
		readAllThen(t, r, "x", io.EOF)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("writer CloseWithError never overwrites the first error", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		write(t, w, "abc")
		require.NoError(t, w.CloseWithError(errPipeTest1))
		require.NoError(t, w.CloseWithError(errPipeTest2))
		require.NoError(t, w.Close())
		readAllThen(t, r, "abc", errPipeTest1)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("writer Close then CloseWithError keeps io.EOF", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		require.NoError(t, w.Close())
		require.NoError(t, w.CloseWithError(errPipeTest1))
		readAllThen(t, r, "", io.EOF)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("Write after writer Close", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		require.NoError(t, w.Close())
		n, err := w.Write([]byte("late"))
		require.Equal(t, 0, n)
		require.Equal(t, io.ErrClosedPipe, err)
		n, err = w.WriteString("late")
		require.Equal(t, 0, n)
		require.Equal(t, io.ErrClosedPipe, err)
		m, err := w.ReadFrom(bytes.NewReader([]byte("late")))
		require.Equal(t, int64(0), m)
		require.Equal(t, io.ErrClosedPipe, err)
		require.Equal(t, 0, pool.Stats().BlocksInUse)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("Write after reader Close", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		require.NoError(t, r.Close())
		n, err := w.Write([]byte("late"))
		require.Equal(t, 0, n)
		require.Equal(t, io.ErrClosedPipe, err)
		m, err := w.ReadFrom(bytes.NewReader([]byte("late")))
		require.Equal(t, int64(0), m)
		require.Equal(t, io.ErrClosedPipe, err)
		require.Equal(t, 0, pool.Stats().BlocksInUse)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("Write after reader CloseWithError gets the error", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		require.NoError(t, r.CloseWithError(errPipeTest1))
		require.NoError(t, r.CloseWithError(errPipeTest2), "a second close is harmless")
		n, err := w.Write([]byte("late"))
		require.Equal(t, 0, n)
		require.Equal(t, errPipeTest1, err, "the first error stays")
		m, err := w.ReadFrom(bytes.NewReader([]byte("late")))
		require.Equal(t, int64(0), m)
		require.Equal(t, errPipeTest1, err)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("reader CloseWithError(nil) is Close", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		require.NoError(t, r.CloseWithError(nil))
		n, err := w.Write([]byte("late"))
		require.Equal(t, 0, n)
		require.Equal(t, io.ErrClosedPipe, err)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("Read after reader Close", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		write(t, w, "unread")
		require.NoError(t, r.Close())
		for range 2 {
			n, err := r.Read(make([]byte, 10))
			require.Equal(t, 0, n)
			require.Equal(t, io.ErrClosedPipe, err)
		}
		require.NoError(t, w.Close())
		n, err := r.Read(make([]byte, 10))
		require.Equal(t, 0, n)
		require.Equal(t, io.ErrClosedPipe, err, "the reader's own close wins over the writer's")
		m, err := r.WriteTo(io.Discard)
		require.Equal(t, int64(0), m)
		require.Equal(t, io.ErrClosedPipe, err)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("reader Close wakes a waiting reader", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		res := async(func() (int, error) { return r.Read(make([]byte, 10)) })
		waitWaiters(t, pool, 1)
		require.NoError(t, r.Close())
		require.Equal(t, result{0, io.ErrClosedPipe}, await(t, "the waiting Read", res))
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("closing twice is harmless", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		write(t, w, "data")
		require.NoError(t, w.Close())
		require.NoError(t, w.Close())
		readAllThen(t, r, "data", io.EOF)
		require.NoError(t, r.Close())
		require.NoError(t, r.Close())
		n, err := w.Write([]byte("x"))
		require.Equal(t, 0, n)
		require.Equal(t, io.ErrClosedPipe, err)
		pipeCheckNoLeak(t, pool, r, w)
	})

	// A writer blocked when the reader closes wakes with the reader's error.
	blockedCases := []struct {
		name  string
		close func(r *PipeReader) error
		want  error
	}{
		{"Close", (*PipeReader).Close, io.ErrClosedPipe},
		{"CloseWithError", func(r *PipeReader) error { return r.CloseWithError(errPipeTest1) }, errPipeTest1},
	}
	for _, bc := range blockedCases {
		t.Run("reader "+bc.name+" wakes a Write blocked on space", func(t *testing.T) {
			pool, r, w := newPipe(t, bs)
			res := async(func() (int, error) { return w.Write(make([]byte, 3*bs)) })
			waitWaiters(t, pool, 1)
			require.True(t, stillRunning(res), "the call returned while it should wait")
			require.Equal(t, 1, pool.Stats().BlocksInUse)
			require.NoError(t, bc.close(r))
			require.Equal(t, result{bs, bc.want}, await(t, "the blocked Write", res))
			pipeCheckNoLeak(t, pool, r, w)
		})
		t.Run("reader "+bc.name+" wakes a Write blocked on the pool", func(t *testing.T) {
			pool := testPool(t, 2*bs, bs)
			hog := pool.NewBytes(0)
			n, err := hog.Write(make([]byte, 2*bs))
			require.NoError(t, err)
			require.Equal(t, 2*bs, n)
			r, w := pool.NewPipe(0)
			res := async(func() (int, error) { return w.Write(make([]byte, 100)) })
			waitWaiters(t, pool, 1)
			require.True(t, stillRunning(res), "the call returned while it should wait")
			require.NoError(t, bc.close(r))
			require.Equal(t, result{0, bc.want}, await(t, "the blocked Write", res))
			require.Equal(t, 2, pool.Stats().BlocksInUse, "only the hog's blocks are in use")
			hog.Free()
			pipeCheckNoLeak(t, pool, r, w)
		})
		t.Run("reader "+bc.name+" wakes a ReadFrom blocked on space", func(t *testing.T) {
			pool, r, w := newPipe(t, bs)
			res := async(func() (int64, error) { return w.ReadFrom(pipeZeroReader{}) })
			waitWaiters(t, pool, 1)
			require.True(t, stillRunning(res), "the call returned while it should wait")
			require.NoError(t, bc.close(r))
			require.Equal(t, result{bs, bc.want}, await(t, "the blocked ReadFrom", res))
			pipeCheckNoLeak(t, pool, r, w)
		})
		t.Run("reader "+bc.name+" wakes a ReadFrom blocked on the pool", func(t *testing.T) {
			pool := testPool(t, 2*bs, bs)
			hog := pool.NewBytes(0)
			_, err := hog.Write(make([]byte, 2*bs))
			require.NoError(t, err)
			r, w := pool.NewPipe(0)
			res := async(func() (int64, error) { return w.ReadFrom(pipeZeroReader{}) })
			waitWaiters(t, pool, 1)
			require.True(t, stillRunning(res), "the call returned while it should wait")
			require.NoError(t, bc.close(r))
			require.Equal(t, result{0, bc.want}, await(t, "the blocked ReadFrom", res))
			require.Equal(t, 2, pool.Stats().BlocksInUse, "only the hog's blocks are in use")
			hog.Free()
			pipeCheckNoLeak(t, pool, r, w)
		})
	}

	t.Run("reader Close returns every block while data is unread", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		write(t, w, string(make([]byte, 5000)))
		require.Equal(t, 5, pool.Stats().BlocksInUse)
		n, err := r.Read(make([]byte, 100))
		require.NoError(t, err)
		require.Equal(t, 100, n)
		require.Equal(t, 5, pool.Stats().BlocksInUse)
		require.NoError(t, r.Close())
		require.Equal(t, 0, pool.Stats().BlocksInUse, "the reader's Close returns the blocks of unread data")
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("after writer Close blocks go back as the reader drains", func(t *testing.T) {
		pool, r, w := newPipe(t, 0)
		data := pipeRandomData(4*bs, 8)
		write(t, w, string(data))
		require.NoError(t, w.Close())
		require.Equal(t, 4, pool.Stats().BlocksInUse, "the writer's Close keeps unread data")
		var got []byte
		for _, step := range []struct{ read, inUse int }{
			{bs, 3}, {1000, 3}, {24, 2}, {1, 2}, {bs - 1, 1}, {bs, 0},
		} {
			buf := make([]byte, step.read)
			n, err := io.ReadFull(r, buf)
			require.NoError(t, err)
			got = append(got, buf[:n]...)
			require.Equal(t, step.inUse, pool.Stats().BlocksInUse, "after reading %d bytes", len(got))
		}
		require.Equal(t, data, got)
		n, err := r.Read(make([]byte, 1))
		require.Equal(t, 0, n)
		require.Equal(t, io.EOF, err)
		pipeCheckNoLeak(t, pool, r, w)
	})
}

// pipeZeroReader is an endless source of zeros without WriteTo.
type pipeZeroReader struct{}

func (pipeZeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestPipeContext(t *testing.T) {
	const bs = 1024
	t.Run("ReadContext cancelled on an empty pipe", func(t *testing.T) {
		pool := testPool(t, 64*bs, bs)
		r, w := pool.NewPipe(0)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res := async(func() (int, error) { return r.ReadContext(ctx, make([]byte, 10)) })
		waitWaiters(t, pool, 1)
		require.True(t, stillRunning(res), "the call returned while it should wait")
		cancel()
		require.Equal(t, result{0, context.Canceled}, await(t, "the cancelled ReadContext", res))
		require.Equal(t, 0, pool.Stats().Waiters)

		// Already cancelled: returns at once.
		n, err := r.ReadContext(ctx, make([]byte, 10))
		require.Equal(t, 0, n)
		require.Equal(t, context.Canceled, err)

		// Nothing is lost: the pipe still works.
		n, err = w.Write([]byte("after"))
		require.NoError(t, err)
		require.Equal(t, 5, n)
		buf := make([]byte, 10)
		n, err = r.Read(buf)
		require.NoError(t, err)
		require.Equal(t, "after", string(buf[:n]))
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("ReadContext past its deadline on an empty pipe", func(t *testing.T) {
		pool := testPool(t, 64*bs, bs)
		r, w := pool.NewPipe(0)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		n, err := r.ReadContext(ctx, make([]byte, 10))
		require.Equal(t, 0, n)
		require.Equal(t, context.DeadlineExceeded, err)
		require.Equal(t, 0, pool.Stats().Waiters)

		n, err = w.Write([]byte("after"))
		require.NoError(t, err)
		require.Equal(t, 5, n)
		require.NoError(t, w.Close())
		got, err := io.ReadAll(r)
		require.NoError(t, err)
		require.Equal(t, "after", string(got))
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("ReadContext with a live context reads", func(t *testing.T) {
		pool := testPool(t, 64*bs, bs)
		r, w := pool.NewPipe(0)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res := async(func() (int, error) { return r.ReadContext(ctx, make([]byte, 10)) })
		waitWaiters(t, pool, 1)
		_, err := w.Write([]byte("abc"))
		require.NoError(t, err)
		require.Equal(t, result{3, nil}, await(t, "the ReadContext", res))
		pipeCheckNoLeak(t, pool, r, w)
	})

	for _, deadline := range []bool{false, true} {
		name, wantErr := "cancelled", context.Canceled
		if deadline {
			name, wantErr = "past its deadline", context.DeadlineExceeded
		}
		// start returns a context and the function that ends it.
		start := func() (context.Context, func(), func()) {
			if deadline {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				return ctx, func() {}, cancel
			}
			ctx, cancel := context.WithCancel(context.Background())
			return ctx, cancel, cancel
		}

		t.Run("WriteContext blocked on space, "+name, func(t *testing.T) {
			pool := testPool(t, 64*bs, 256)
			r, w := pool.NewPipe(1000)
			data := pipeRandomData(3000, 9)
			ctx, end, cancel := start()
			defer cancel()
			res := async(func() (int, error) { return w.WriteContext(ctx, data) })
			if !deadline {
				waitWaiters(t, pool, 1)
				require.True(t, stillRunning(res), "the call returned while it should wait")
			}
			end()
			require.Equal(t, result{1000, wantErr}, await(t, "the blocked WriteContext", res),
				"WriteContext returns the bytes already buffered")
			require.Equal(t, 0, pool.Stats().Waiters)
			require.NoError(t, w.Close())
			got, err := io.ReadAll(r)
			require.NoError(t, err)
			require.Equal(t, data[:1000], got, "the reader gets exactly the bytes reported")
			pipeCheckNoLeak(t, pool, r, w)
		})
		t.Run("WriteContext blocked on the pool, "+name, func(t *testing.T) {
			const blocks = 4
			pool := testPool(t, blocks*bs, bs)
			r, w := pool.NewPipe(0)
			data := pipeRandomData(5*bs+100, 10)
			ctx, end, cancel := start()
			defer cancel()
			res := async(func() (int, error) { return w.WriteContext(ctx, data) })
			if !deadline {
				waitWaiters(t, pool, 1)
				require.True(t, stillRunning(res), "the call returned while it should wait")
			}
			end()
			got := await(t, "the blocked WriteContext", res)
			require.Equal(t, wantErr, got.err)
			require.Equal(t, int64(blocks*bs), got.n, "WriteContext filled the pool before it waited")
			require.Equal(t, 0, pool.Stats().Waiters)
			require.Equal(t, blocks, pool.Stats().BlocksInUse)
			require.NoError(t, w.Close())
			out, err := io.ReadAll(r)
			require.NoError(t, err)
			require.Equal(t, data[:got.n], out, "the reader gets exactly the bytes reported")
			pipeCheckNoLeak(t, pool, r, w)
		})
		t.Run("WriteContext blocked on the pool behind another holder, "+name, func(t *testing.T) {
			pool := testPool(t, 2*bs, bs)
			hog := pool.NewBytes(0)
			_, err := hog.Write(make([]byte, 2*bs))
			require.NoError(t, err)
			r, w := pool.NewPipe(0)
			ctx, end, cancel := start()
			defer cancel()
			res := async(func() (int, error) { return w.WriteContext(ctx, []byte("waits")) })
			if !deadline {
				waitWaiters(t, pool, 1)
				require.True(t, stillRunning(res), "the call returned while it should wait")
			}
			end()
			require.Equal(t, result{0, wantErr}, await(t, "the blocked WriteContext", res))
			require.Equal(t, 0, pool.Stats().Waiters)
			require.Equal(t, 2, pool.Stats().BlocksInUse)
			hog.Free()
			// The cancelled waiter left the queue: the pipe works.
			n, err := w.Write([]byte("after"))
			require.NoError(t, err)
			require.Equal(t, 5, n)
			require.NoError(t, w.Close())
			out, err := io.ReadAll(r)
			require.NoError(t, err)
			require.Equal(t, "after", string(out))
			pipeCheckNoLeak(t, pool, r, w)
		})
	}
}

func TestPipeZeroLength(t *testing.T) {
	pool := testPool(t, 64<<10, 1024)
	r, w := pool.NewPipe(0)
	n, err := r.Read(nil)
	require.Equal(t, 0, n)
	require.NoError(t, err)
	n, err = r.Read(make([]byte, 0, 10))
	require.Equal(t, 0, n)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err = r.ReadContext(ctx, nil)
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, context.Canceled, "context first (SPEC 11): a done context wins over len(p) == 0")

	n, err = w.Write(nil)
	require.Equal(t, 0, n)
	require.NoError(t, err)
	require.Equal(t, 0, pool.Stats().BlocksInUse)
	require.Equal(t, 0, pool.Stats().Waiters)
	pipeCheckNoLeak(t, pool, r, w)
}

// TestPipeReadFromWriteToResults checks the counts and errors of the io.Copy
// fast paths.
func TestPipeReadFromWriteToResults(t *testing.T) {
	const bs = 1024
	t.Run("ReadFrom returns the count and nil at the source's EOF", func(t *testing.T) {
		pool := testPool(t, 64*bs, bs)
		r, w := pool.NewPipe(0)
		data := pipeRandomData(5*bs+3, 11)
		n, err := w.ReadFrom(newPipeChunkReader(data, 700, 1))
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), n)
		require.NoError(t, w.Close())
		got, err := io.ReadAll(r)
		require.NoError(t, err)
		require.Equal(t, data, got)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("ReadFrom returns the source's error, the data stays", func(t *testing.T) {
		pool := testPool(t, 64*bs, bs)
		r, w := pool.NewPipe(0)
		src := io.MultiReader(bytes.NewReader([]byte("head")), &pipeErrReader{errPipeTest1})
		n, err := w.ReadFrom(src)
		require.Equal(t, errPipeTest1, err)
		require.Equal(t, int64(4), n)
		require.NoError(t, w.Close())
		got, err := io.ReadAll(r)
		require.NoError(t, err)
		require.Equal(t, "head", string(got))
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("WriteTo returns nil after the writer's Close", func(t *testing.T) {
		pool := testPool(t, 64*bs, bs)
		r, w := pool.NewPipe(0)
		data := pipeRandomData(3*bs+5, 12)
		_, err := w.Write(data)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		var dst bytes.Buffer
		n, err := r.WriteTo(&dst)
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), n)
		require.Equal(t, data, dst.Bytes())
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("WriteTo to a net.Conn", func(t *testing.T) {
		pool := testPool(t, 64*bs, bs)
		r, w := pool.NewPipe(0)
		data := pipeRandomData(3*bs+5, 13)
		_, err := w.Write(data)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		src, dst := tcpConns(t)
		defer dst.Close()
		n, err := r.WriteTo(src)
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), n)
		require.NoError(t, src.Close())
		got, err := io.ReadAll(dst)
		require.NoError(t, err)
		require.Equal(t, data, got)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("WriteTo to a writer returning an invalid count, the data stays", func(t *testing.T) {
		pool := testPool(t, 64*bs, bs)
		r, w := pool.NewPipe(0)
		data := pipeRandomData(2*bs+5, 14)
		_, err := w.Write(data)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		for _, k := range []int{-1, len(data) + 1} {
			n, err := r.WriteTo(writerFunc(func([]byte) (int, error) { return k, nil }))
			require.ErrorIs(t, err, errInvalidWrite)
			require.Equal(t, int64(0), n)
		}
		got, err := io.ReadAll(r)
		require.NoError(t, err)
		require.Equal(t, data, got)
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("WriteTo returns the writer's CloseWithError", func(t *testing.T) {
		pool := testPool(t, 64*bs, bs)
		r, w := pool.NewPipe(0)
		_, err := w.Write([]byte("tail"))
		require.NoError(t, err)
		require.NoError(t, w.CloseWithError(errPipeTest1))
		var dst bytes.Buffer
		n, err := r.WriteTo(&dst)
		require.Equal(t, errPipeTest1, err)
		require.Equal(t, int64(4), n)
		require.Equal(t, "tail", dst.String())
		pipeCheckNoLeak(t, pool, r, w)
	})
	t.Run("WriteTo writes a run of adjacent blocks at once, up to the end of its slab", func(t *testing.T) {
		// An unlimited pool's slab 0 holds 256 blocks of 1 KiB, which a
		// fresh pool hands out in order: a pipe holding 300 blocks from
		// 10 bytes into its first block is two runs.
		pool := testPool(t, 0, bs)
		r, w := pool.NewPipe(0)
		data := pipeRandomData(300*bs, 14)
		_, err := w.Write(data)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		head := make([]byte, 10)
		_, err = io.ReadFull(r, head)
		require.NoError(t, err)
		var dst bytes.Buffer
		calls := 0
		n, err := r.WriteTo(writerFunc(func(q []byte) (int, error) {
			calls++
			return dst.Write(q)
		}))
		require.NoError(t, err)
		require.Equal(t, int64(len(data)-10), n)
		require.Equal(t, data[10:], dst.Bytes())
		require.Equal(t, 2, calls)
		pipeCheckNoLeak(t, pool, r, w)

		// Two pipes written in turn take every other block: one
		// Write per block.
		r, w = pool.NewPipe(0)
		r2, w2 := pool.NewPipe(0)
		data = data[:5*bs]
		for i := 0; i < len(data); i += bs {
			for _, w := range []*PipeWriter{w, w2} {
				_, err := w.Write(data[i : i+bs])
				require.NoError(t, err)
			}
		}
		require.NoError(t, w.Close())
		dst.Reset()
		calls = 0
		n, err = r.WriteTo(writerFunc(func(q []byte) (int, error) {
			calls++
			return dst.Write(q)
		}))
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), n)
		require.Equal(t, data, dst.Bytes())
		require.Equal(t, 5, calls)
		require.NoError(t, w2.Close())
		got, err := io.ReadAll(r2)
		require.NoError(t, err)
		require.Equal(t, data, got)
		pipeCheckNoLeak(t, pool, r, w)
		pipeCheckNoLeak(t, pool, r2, w2)
	})
	for _, limit := range []int{0, 10, bs, 1500} {
		t.Run(fmt.Sprintf("WriteTo returns the destination's error after %d bytes, the rest stays", limit), func(t *testing.T) {
			pool := testPool(t, 64*bs, bs)
			r, w := pool.NewPipe(0)
			data := pipeRandomData(3*bs+5, 13)
			_, err := w.Write(data)
			require.NoError(t, err)
			dst := &pipeFailWriter{limit: limit, err: errPipeTest2}
			n, err := r.WriteTo(dst)
			require.Equal(t, errPipeTest2, err)
			require.Equal(t, int64(limit), n)
			require.Equal(t, data[:limit], append([]byte{}, dst.got...))
			require.NoError(t, w.Close())
			rest, err := io.ReadAll(r)
			require.NoError(t, err)
			require.Equal(t, data[limit:], rest)
			pipeCheckNoLeak(t, pool, r, w)
		})
	}
}

type pipeErrReader struct{ err error }

func (e *pipeErrReader) Read([]byte) (int, error) { return 0, e.err }

// pipeFailWriter takes limit bytes, then fails with err.
type pipeFailWriter struct {
	limit int
	got   []byte
	err   error
}

func (f *pipeFailWriter) Write(p []byte) (int, error) {
	k := min(len(p), f.limit-len(f.got))
	f.got = append(f.got, p[:k]...)
	if k < len(p) {
		return k, f.err
	}
	return k, nil
}

// TestPipeConcurrentWritersRecords: several writers write 8-byte records,
// one Write per record, through a pipe bounded by an unlimited pool only,
// where a Write is buffered in one piece; one reader must see every record
// intact, once, and each writer's records in order. The blocks are smaller
// than and not a multiple of the record, so records straddle blocks.
func TestPipeConcurrentWritersRecords(t *testing.T) {
	const writers = 8
	records := 5000
	if testing.Short() || raceEnabled {
		records = 1000
	}
	pool := testPool(t, 0, 60)
	r, w := pool.NewPipe(0)
	var wg sync.WaitGroup
	for id := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rec [8]byte
			for seq := range records {
				binary.BigEndian.PutUint32(rec[:4], uint32(id))
				binary.BigEndian.PutUint32(rec[4:], uint32(seq))
				n, err := w.Write(rec[:])
				if !assert.NoError(t, err) || !assert.Equal(t, 8, n) {
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		_ = w.Close()
	}()

	next := make([]int, writers)
	var rec [8]byte
	for {
		_, err := io.ReadFull(r, rec[:])
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		id := int(binary.BigEndian.Uint32(rec[:4]))
		seq := int(binary.BigEndian.Uint32(rec[4:]))
		require.Less(t, id, writers, "record %x is torn", rec)
		require.Equal(t, next[id], seq, "writer %d: record out of order or torn", id)
		next[id]++
	}
	for id := range writers {
		require.Equal(t, records, next[id], "writer %d", id)
	}
	pipeCheckNoLeak(t, pool, r, w)
}

// pipeConcurrentTotals runs writers and readers on one pipe at once and
// checks that the count and the sum of the bytes that come out are those
// that went in. The readers are given by read, which reads r to the end and
// returns the count and the sum of what it read.
func pipeConcurrentTotals(t *testing.T, readers []func(r *PipeReader) (int64, uint64, error), readFromWriters int) {
	const writers = 4
	perWriter := 256 << 10
	if testing.Short() || raceEnabled {
		perWriter = 64 << 10
	}
	pool := testPool(t, 64<<10, 512)
	r, w := pool.NewPipe(4096)

	var wantN int64
	var wantSum uint64
	datas := make([][]byte, writers)
	for i := range datas {
		datas[i] = pipeRandomData(perWriter, uint64(100+i))
		wantN += int64(len(datas[i]))
		for _, c := range datas[i] {
			wantSum += uint64(c)
		}
	}

	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i < readFromWriters {
				n, err := w.ReadFrom(newPipeChunkReader(datas[i], 3000, uint64(i)))
				assert.NoError(t, err)
				assert.Equal(t, int64(len(datas[i])), n)
				return
			}
			rng := rand.New(rand.NewPCG(uint64(i), 4))
			for d := datas[i]; len(d) > 0; {
				k := min(len(d), 1+rng.IntN(3000))
				n, err := w.Write(d[:k])
				if !assert.NoError(t, err) || !assert.Equal(t, k, n) {
					return
				}
				d = d[k:]
			}
		}()
	}
	go func() {
		wg.Wait()
		_ = w.Close()
	}()

	var gotN atomic.Int64
	var gotSum atomic.Uint64
	var rwg sync.WaitGroup
	for _, read := range readers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			n, sum, err := read(r)
			if !assert.NoError(t, err) {
				_ = r.CloseWithError(err) // unblock the writers
			}
			gotN.Add(n)
			gotSum.Add(sum)
		}()
	}
	rwg.Wait()
	require.Equal(t, wantN, gotN.Load(), "byte count")
	require.Equal(t, wantSum, gotSum.Load(), "byte sum")
	pipeCheckNoLeak(t, pool, r, w)
}

// pipeSumWriter counts and sums what it is given.
type pipeSumWriter struct {
	n   int64
	sum uint64
}

func (s *pipeSumWriter) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	for _, c := range p {
		s.sum += uint64(c)
	}
	return len(p), nil
}

func pipeReadLoop(seed uint64) func(r *PipeReader) (int64, uint64, error) {
	return func(r *PipeReader) (int64, uint64, error) {
		var s pipeSumWriter
		_, err := pipeReadChunks(r, &s, 2000, seed, nil)
		return s.n, s.sum, err
	}
}

func pipeCopyLoop(r *PipeReader) (int64, uint64, error) {
	var s pipeSumWriter
	n, err := io.Copy(&s, r) // r.WriteTo
	if err == nil && n != s.n {
		err = fmt.Errorf("io.Copy returned %d, the destination got %d", n, s.n)
	}
	return s.n, s.sum, err
}

func TestPipeConcurrentReaders(t *testing.T) {
	readers := []func(r *PipeReader) (int64, uint64, error){
		pipeReadLoop(1), pipeReadLoop(2), pipeReadLoop(3), pipeReadLoop(4),
	}
	t.Run("Write", func(t *testing.T) { pipeConcurrentTotals(t, readers, 0) })
	t.Run("Write+ReadFrom", func(t *testing.T) { pipeConcurrentTotals(t, readers, 2) })
}

// TestPipeConcurrentWriteTo: WriteTo is a read like any other, so several
// goroutines may copy out of one reader at once.
func TestPipeConcurrentWriteTo(t *testing.T) {
	t.Run("one WriteTo among Reads", func(t *testing.T) {
		pipeConcurrentTotals(t, []func(r *PipeReader) (int64, uint64, error){
			pipeCopyLoop, pipeReadLoop(1), pipeReadLoop(2),
		}, 1)
	})
	t.Run("several WriteTo", func(t *testing.T) {
		pipeConcurrentTotals(t, []func(r *PipeReader) (int64, uint64, error){
			pipeCopyLoop, pipeCopyLoop, pipeCopyLoop, pipeReadLoop(1),
		}, 1)
	})
}

func TestPipeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	const size = 1024
	in := pipeRandomData(size, 14)
	out := make([]byte, size)

	t.Run("Write+Read", func(t *testing.T) {
		pool := testPool(t, 1<<20, 4096)
		r, w := pool.NewPipe(64 << 10)
		var bad error
		allocs := testing.AllocsPerRun(2000, func() {
			if n, err := w.Write(in); n != size || err != nil {
				bad = fmt.Errorf("Write: %d, %v", n, err)
			}
			if n, err := r.Read(out); n != size || err != nil {
				bad = fmt.Errorf("Read: %d, %v", n, err)
			}
		})
		require.NoError(t, bad)
		require.Equal(t, in, out)
		t.Logf("allocs per 1 KiB Write+Read: %v", allocs)
		require.Zero(t, allocs, "allocations per Write+Read")
		pipeCheckNoLeak(t, pool, r, w)
	})

	t.Run("NewPipe", func(t *testing.T) {
		pool := testPool(t, 1<<20, 4096)
		allocs := testing.AllocsPerRun(100, func() {
			r, w := pool.NewPipe(64 << 10)
			_ = r.Close()
			_ = w.Close()
		})
		// The pipe, its slots and the two ends; the finalizer and
		// closing cost nothing.
		require.Equal(t, 3.0, allocs, "allocations per NewPipe and Close of both ends")
		require.Equal(t, 0, pool.Stats().BlocksInUse)
	})

	t.Run("blocking round trip", func(t *testing.T) {
		const runs = 2000
		pool := testPool(t, 1<<20, 4096)
		r, w := pool.NewPipe(size)
		wdone := make(chan error, 1)
		go func() {
			// AllocsPerRun calls f runs+1 times (one warm-up).
			for range runs + 1 {
				if n, err := w.Write(in); n != size || err != nil {
					wdone <- fmt.Errorf("Write: %d, %v", n, err)
					return
				}
			}
			wdone <- nil
		}()
		var bad error
		allocs := testing.AllocsPerRun(runs, func() {
			for got := 0; got < size; {
				n, err := r.Read(out[got:])
				if err != nil {
					bad = err
					return
				}
				got += n
			}
		})
		require.NoError(t, bad)
		select {
		case err := <-wdone:
			require.NoError(t, err)
		case <-time.After(waitTimeout):
			require.FailNow(t, "the writer did not finish")
		}
		require.Equal(t, in, out)
		t.Logf("allocs per blocking 1 KiB round trip: %v", allocs)
		require.Zero(t, allocs, "allocations per blocking Write/Read round trip")
		pipeCheckNoLeak(t, pool, r, w)
	})
}

// pipeForget makes a pipe, buffers data in it and drops both ends without
// closing them.
//
//go:noinline
func pipeForget(t *testing.T, pool *BytesPool) {
	r, w := pool.NewPipe(0)
	n, err := w.Write(make([]byte, 5000))
	require.NoError(t, err)
	require.Equal(t, 5000, n)
	runtime.KeepAlive(r)
}

func TestPipeForgottenIsReclaimed(t *testing.T) {
	pool := testPool(t, 1<<20, 4096)
	pipeForget(t, pool)
	require.Equal(t, 2, pool.Stats().BlocksInUse)
	require.Eventually(t, func() bool {
		runtime.GC()
		return pool.Stats().BlocksInUse == 0
	}, waitTimeout, 10*time.Millisecond, "the blocks of a forgotten pipe were not reclaimed")
}

// A source that panics, or returns a count outside the buffer, in the
// middle of a ReadFrom leaks no block: the bytes of the reads before it stay
// readable, and closing both ends gives every block back.
func TestPipeReadFromPanics(t *testing.T) {
	const bs = 64
	for _, c := range []struct {
		name string
		bad  func(p []byte) (int, error)
		msg  string // what the panic says, if it is ours
	}{
		{"bad count", func(p []byte) (int, error) { return len(p) + 1, nil }, "bytespool: ReadFrom: reader returned count"},
		{"reader panics", func(p []byte) (int, error) { copy(p, "junk"); panic(errTest) }, ""},
	} {
		for _, at := range []int{bs, 4} { // the panic at a fresh block, or in the tail
			t.Run(fmt.Sprintf("%s at %d", c.name, at), func(t *testing.T) {
				pool := testPool(t, 8*bs, bs)
				r, w := pool.NewPipe(0)
				head := fill(at, 3)
				calls := 0
				src := readerFunc(func(p []byte) (int, error) {
					if calls++; calls == 1 {
						return copy(p, head), nil
					}
					return c.bad(p)
				})
				got := fmt.Sprint(func() (v any) {
					defer func() { v = recover() }()
					_, _ = w.ReadFrom(src)
					return nil
				}())
				if c.msg != "" {
					assert.Contains(t, got, c.msg)
				} else {
					assert.Equal(t, errTest.Error(), got)
				}
				require.NoError(t, w.Close())
				out, err := io.ReadAll(r)
				require.NoError(t, err)
				assert.Equal(t, head, out)
				pipeCheckNoLeak(t, pool, r, w)
			})
		}
	}
}

// NewPipe sizes its slot array by what the pipe can span: a bound past
// what the pool holds costs no more than the pool, a huge bound neither
// overflows nor allocates its whole span up front, and a pipe that spans
// more blocks than its first array grows it as it fills.
func TestPipeSlotsFromBound(t *testing.T) {
	const bs = 16
	for _, c := range []struct {
		name             string
		maxMemory, bound int
		slots            int
	}{
		{"bound of 3 blocks", 64 * bs, 3 * bs, 4},
		{"bound of 3 blocks and a byte", 64 * bs, 3*bs + 1, 8},
		{"bound past a 16-block pool", 16 * bs, 1 << 40, 32},
		{"huge bound, unlimited pool", 0, 1 << 40, maxFirstSlots},
		{"math.MaxInt, unlimited pool", 0, math.MaxInt, maxFirstSlots},
		{"unbounded", 0, 0, 16},
	} {
		t.Run(c.name, func(t *testing.T) {
			pool := testPool(t, c.maxMemory, bs)
			r, w := pool.NewPipe(c.bound)
			assert.Len(t, *r.p.slots.Load(), c.slots)
			pipeCheckNoLeak(t, pool, r, w)
		})
	}
	t.Run("growing past the first array", func(t *testing.T) {
		pool := testPool(t, 0, bs)
		r, w := pool.NewPipe(math.MaxInt)
		data := pipeRandomData(2*maxFirstSlots*bs+5, 15)
		n, err := w.Write(data)
		require.NoError(t, err)
		require.Equal(t, len(data), n)
		assert.Len(t, *r.p.slots.Load(), 4*maxFirstSlots)
		require.NoError(t, w.Close())
		got, err := io.ReadAll(r)
		require.NoError(t, err)
		require.Equal(t, data, got)
		pipeCheckNoLeak(t, pool, r, w)
	})
}

// A pipe's writer takes the blocks its reader freed before the free blocks
// of its own shard: the pipe reuses its own blocks, and leaves the
// writer's shard's to the Bytes of the writer's core.
func TestPipeWriterReusesReadersBlocks(t *testing.T) {
	const bs = 64
	p := twoShardPool(t, 8*bs, bs)
	r, w := p.NewPipe(0)
	require.Equal(t, 0, w.p.shard, "the writer's shard")
	require.Equal(t, 1, w.p.rshard, "the reader's shard")
	// Two free blocks in the ring of the writer's shard.
	b := onShard(p, 0)
	writeAll(t, b, fill(2*bs, 1))
	b.Free()

	block := func(k uint64) uint32 { return *blockSlot(*w.p.slots.Load(), k) }
	buf := make([]byte, bs)
	_, err := w.Write(fill(bs, 2))
	require.NoError(t, err)
	first := block(0) // from the writer's shard: the reader's has none yet
	_, err = io.ReadFull(r, buf)
	require.NoError(t, err)
	_, err = w.Write(fill(bs, 3))
	require.NoError(t, err)
	assert.Equal(t, first, block(1), "the block the reader freed, not the other one in the writer's shard")
	_, err = io.ReadFull(r, buf)
	require.NoError(t, err)
	assert.Equal(t, fill(bs, 3), buf)
	pipeCheckNoLeak(t, p, r, w)
}

func TestPipeNegativeMaxBufferedPanics(t *testing.T) {
	pool := testPool(t, 1<<20, 4096)
	var msg string
	func() {
		defer func() { msg = fmt.Sprint(recover()) }()
		pool.NewPipe(-1)
	}()
	require.Contains(t, msg, "maxBuffered")
	require.Contains(t, msg, "-1")
	require.Equal(t, 0, pool.Stats().BlocksInUse)
}

// TestPipeCloseWhileBusy closes the reader while a writer and a reader are
// in the middle of their calls, many times over: whichever of the three
// leaves the pipe last must give every block back (reclaim), so after both
// calls have returned the pool holds no block and nobody waits.
func TestPipeCloseWhileBusy(t *testing.T) {
	rounds := 300
	if testing.Short() || raceEnabled {
		rounds = 60
	}
	const bs = 64
	pool := testPool(t, 64*bs, bs)
	data := pipeRandomData(1000, 15)
	for round := range rounds {
		rng := rand.New(rand.NewPCG(uint64(round), 6))
		r, w := pool.NewPipe(1 + rng.IntN(8*bs))
		readFrom, writeTo := round%2 == 1, round%4 >= 2
		werr := make(chan error, 1)
		go func() {
			if readFrom {
				_, err := w.ReadFrom(pipeZeroReader{})
				werr <- err
				return
			}
			wrng := rand.New(rand.NewPCG(uint64(round), 7)) // its own: rng is the closer's
			for {
				if _, err := w.Write(data[:1+wrng.IntN(len(data))]); err != nil {
					werr <- err
					return
				}
			}
		}()
		rerr := make(chan error, 1)
		go func() {
			if writeTo {
				_, err := r.WriteTo(io.Discard)
				rerr <- err
				return
			}
			buf := make([]byte, 300)
			for {
				if _, err := r.Read(buf[:1+round%len(buf)]); err != nil {
					rerr <- err
					return
				}
			}
		}()
		// A sleep rather than Gosched calls: with one P, each Gosched
		// would wait out the time slice of the two ends, which hand the P
		// to each other directly.
		time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
		require.NoError(t, r.Close())
		for name, ch := range map[string]chan error{"writer": werr, "reader": rerr} {
			select {
			case err := <-ch:
				require.Equal(t, io.ErrClosedPipe, err, "round %d: the %s's error", round, name)
			case <-time.After(waitTimeout):
				require.FailNow(t, "a call did not return after the reader closed", "round %d: the %s", round, name)
			}
		}
		st := pool.Stats()
		require.Equal(t, 0, st.BlocksInUse, "round %d: blocks left after both calls returned", round)
		require.Equal(t, 0, st.Waiters, "round %d", round)
	}
}
