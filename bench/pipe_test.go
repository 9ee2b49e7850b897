package bench

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/djherbis/buffer"
	"github.com/djherbis/nio/v3"
	"github.com/smallnest/ringbuffer"
)

// The shape of Pipe64MiB.
const (
	pipeTotal = 64 << 20 // bytes per op
	pipeChunk = 4 << 10  // bytes per Write and per Read
	pipeBound = 1 << 20  // bytes a pipe may buffer
)

// A pipeRun is one op of Pipe64MiB: it makes a pipe, and a producer
// goroutine writes src over and over in chunk-byte writes until total
// bytes are written, then closes its end; the calling goroutine reads
// chunk bytes at a time into dst (wrapping around) until EOF, and returns
// how many bytes it read. len(src) and total are multiples of chunk.
type pipeRun func(src, dst []byte, total, chunk int) (int64, error)

// A pipePeer is one contender of Pipe64MiB.
type pipePeer struct {
	name string
	// setup builds the state that the ops of one benchmark run share
	// (a pool, a reusable buffer) and returns the op.
	setup func() pipeRun
}

// pipePeers are the contenders of Pipe64MiB. bytespool puts itself first
// (pipe_bytespool_test.go).
var pipePeers = []pipePeer{
	{"io-pipe", setupIOPipe},
	{"nio", setupNio},
	{"ringbuffer", setupRingBuffer},
	{"condring", setupCondRing},
	{"floor", setupPipeFloor},
}

// pipeWriter is the write end of any of the pipes.
type pipeWriter interface {
	io.Writer
	CloseWithError(error) error
}

// transfer runs one op over the pipe r, w: it starts the producer, consumes
// until EOF, closes the read end, and reports the first error of either
// side.
func transfer(r io.ReadCloser, w pipeWriter, src, dst []byte, total, chunk int) (int64, error) {
	werr := make(chan error, 1)
	go func() {
		err := produce(w, src, total, chunk)
		w.CloseWithError(err) // nil closes with io.EOF
		werr <- err
	}()
	n, err := consume(r, dst, chunk)
	r.Close()
	if err2 := <-werr; err == nil {
		err = err2
	}
	if err == nil && n != int64(total) {
		err = fmt.Errorf("bench: read %d bytes through the pipe, want %d", n, total)
	}
	return n, err
}

func produce(w io.Writer, src []byte, total, chunk int) error {
	for off := 0; off < total; off += chunk {
		o := off % len(src)
		if _, err := w.Write(src[o : o+chunk]); err != nil {
			return err
		}
	}
	return nil
}

func consume(r io.Reader, dst []byte, chunk int) (int64, error) {
	var n int64
	o := 0
	for {
		m, err := r.Read(dst[o:min(o+chunk, len(dst))])
		n += int64(m)
		if o += m; o == len(dst) {
			o = 0
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrNoProgress
		}
	}
}

// setupIOPipe: io.Pipe, unbuffered: every Write waits for Reads to take
// all of it, so the 1 MiB bound does not apply.
func setupIOPipe() pipeRun {
	return func(src, dst []byte, total, chunk int) (int64, error) {
		r, w := io.Pipe()
		return transfer(r, w, src, dst, total, chunk)
	}
}

// setupNio: djherbis/nio's Pipe over a 1 MiB djherbis/buffer, reused from
// op to op (each op drains it).
func setupNio() pipeRun {
	buf := buffer.New(pipeBound)
	return func(src, dst []byte, total, chunk int) (int64, error) {
		r, w := nio.Pipe(buf)
		return transfer(r, w, src, dst, total, chunk)
	}
}

// setupRingBuffer: smallnest/ringbuffer in blocking mode over a 1 MiB
// array reused from op to op.
func setupRingBuffer() pipeRun {
	buf := make([]byte, pipeBound)
	return func(src, dst []byte, total, chunk int) (int64, error) {
		rb := ringbuffer.NewBuffer(buf).SetBlocking(true)
		return transfer(rb.ReadCloser(), ringWriter{rb}, src, dst, total, chunk)
	}
}

// ringWriter gives a RingBuffer the write end's CloseWithError.
type ringWriter struct{ *ringbuffer.RingBuffer }

func (w ringWriter) CloseWithError(err error) error {
	if err == nil {
		w.CloseWriter()
	} else {
		w.RingBuffer.CloseWithError(err)
	}
	return nil
}

// setupCondRing: the plain pipe any Go programmer could write: a 1 MiB ring
// under one sync.Mutex, with a sync.Cond for "not empty" that the reader
// waits on and one for "not full" that the writer waits on. The ring is
// reused from op to op (each op drains it).
func setupCondRing() pipeRun {
	buf := make([]byte, pipeBound)
	return func(src, dst []byte, total, chunk int) (int64, error) {
		c := newCondRing(buf)
		return transfer(condReader{c}, condWriter{c}, src, dst, total, chunk)
	}
}

// condRing is the pipe of setupCondRing: buf[r%len(buf):] holds n unread
// bytes, wrapping around.
type condRing struct {
	mu                sync.Mutex
	notEmpty, notFull sync.Cond
	buf               []byte
	r, n              int
	werr, rerr        error // set when the write or read end closes
	wclosed, rclosed  bool
}

func newCondRing(buf []byte) *condRing {
	c := &condRing{buf: buf}
	c.notEmpty.L, c.notFull.L = &c.mu, &c.mu
	return c
}

func (c *condRing) write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	written := 0
	for len(p) > 0 {
		for c.n == len(c.buf) && !c.rclosed {
			c.notFull.Wait()
		}
		if c.rclosed {
			return written, c.rerr
		}
		w := (c.r + c.n) % len(c.buf)
		k := copy(c.buf[w:min(len(c.buf), w+len(c.buf)-c.n)], p)
		c.n += k
		written += k
		p = p[k:]
		c.notEmpty.Signal()
	}
	return written, nil
}

func (c *condRing) read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.n == 0 && !c.wclosed {
		c.notEmpty.Wait()
	}
	if c.n == 0 {
		return 0, c.werr
	}
	k := copy(p, c.buf[c.r:min(len(c.buf), c.r+c.n)])
	if c.r += k; c.r == len(c.buf) {
		c.r = 0
	}
	c.n -= k
	c.notFull.Signal()
	return k, nil
}

// condReader and condWriter are the two ends of a condRing.
type (
	condReader struct{ *condRing }
	condWriter struct{ *condRing }
)

func (r condReader) Read(p []byte) (int, error) { return r.read(p) }

func (r condReader) Close() error {
	r.mu.Lock()
	r.rclosed, r.rerr = true, io.ErrClosedPipe
	r.notFull.Broadcast()
	r.mu.Unlock()
	return nil
}

func (w condWriter) Write(p []byte) (int, error) { return w.write(p) }

func (w condWriter) CloseWithError(err error) error {
	if err == nil {
		err = io.EOF
	}
	w.mu.Lock()
	w.wclosed, w.werr = true, err
	w.notEmpty.Broadcast()
	w.mu.Unlock()
	return nil
}

// setupPipeFloor: no library and no second goroutine: each chunk is copied
// into a 1 MiB ring and out of it again, the two copies a pipe implies.
func setupPipeFloor() pipeRun {
	ring := make([]byte, pipeBound)
	return func(src, dst []byte, total, chunk int) (int64, error) {
		pos, o := 0, 0
		for off := 0; off < total; off += chunk {
			s := off % len(src)
			copy(ring[pos:pos+chunk], src[s:s+chunk])
			copy(dst[o:o+chunk], ring[pos:pos+chunk])
			if pos += chunk; pos == len(ring) {
				pos = 0
			}
			if o += chunk; o == len(dst) {
				o = 0
			}
		}
		return int64(total), nil
	}
}

// setupPipeSPSC is the reference op=spsc of BenchmarkPaired, not a peer:
// the least that any pipe between two goroutines does. It is a fixed 1 MiB
// ring of chunk-sized slots with one single-producer single-consumer
// position per side: per chunk, the producer waits for a free slot, copies
// in and stores its position; the consumer waits for a full slot, copies
// out and stores its position. A side that must wait spins a little, then
// parks (see spscWaiter): on a machine whose cores are shared, a side that
// only spins can burn a whole time slice of the OS while the side it waits
// for is not running. It takes no memory from a pool and has no turns, no
// close and no error paths: it assumes one writer, one reader, and chunks
// that divide the ring and total. Against the floor it shows what moving
// the bytes between two cores costs; bytespool against it, what bytespool's
// pipe adds.
func setupPipeSPSC() pipeRun {
	r := newSPSCRing(pipeBound)
	return func(src, dst []byte, total, chunk int) (int64, error) {
		n := uint64(total / chunk)
		first := r.written.Load() // the previous op read every chunk it wrote
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := first; i < first+n; i++ {
				o := int((i - first) * uint64(chunk) % uint64(len(src)))
				copy(r.slot(i, chunk), src[o:o+chunk])
				r.written.Store(i + 1)
				r.consumer.wake()
			}
		}()
		o := 0
		for i := first; i < first+n; i++ {
			r.awaitWritten(i)
			copy(dst[o:o+chunk], r.slot(i, chunk))
			r.read.Store(i + 1)
			r.producer.wake()
			if o += chunk; o == len(dst) {
				o = 0
			}
		}
		<-done
		return int64(total), nil
	}
}

// spscRing is the ring of setupPipeSPSC. Chunk i lives in slot i mod the
// number of slots; written and read count the chunks each side is done
// with, and sit on cache lines of their own, as do the two sides' waiters.
//
// Why it is correct: only the producer stores written and only the
// consumer stores read, each after its copy of a chunk, and each side
// loads the other's count before its own copy. Go's atomics are
// sequentially consistent, so the producer's copy into a slot happens
// before the consumer's copy out of it (written), and the consumer's copy
// out happens before the producer's next copy into that slot, a lap later
// (read). The counts only grow, 64 bits wide, so no value comes back and
// there is no ABA. TestPipes moves four times the ring through it, twice,
// and checks every byte.
type spscRing struct {
	buf      []byte
	_        [64]byte
	written  atomic.Uint64
	_        [64]byte
	read     atomic.Uint64
	_        [64]byte
	producer spscWaiter // parked while the ring is full
	_        [64]byte
	consumer spscWaiter // parked while the ring is empty
	_        [64]byte
}

func newSPSCRing(size int) *spscRing {
	r := &spscRing{buf: make([]byte, size)}
	r.producer.token = make(chan struct{}, 1)
	r.consumer.token = make(chan struct{}, 1)
	return r
}

// slot returns the bytes of chunk i, once the producer may write them:
// when the consumer is done with the chunk a lap before.
func (r *spscRing) slot(i uint64, chunk int) []byte {
	slots := uint64(len(r.buf) / chunk)
	r.producer.await(func() bool { return i-r.read.Load() < slots })
	s := int(i%slots) * chunk
	return r.buf[s : s+chunk]
}

// awaitWritten waits until the producer has written chunk i.
func (r *spscRing) awaitWritten(i uint64) {
	r.consumer.await(func() bool { return r.written.Load() > i })
}

// spscSpins is how many times a side of the spsc ring checks before it
// parks, yielding every 64 checks: a few chunk copies of the other side.
// Spinning longer, or without yielding, measured slower: the side waited
// for may be queued on the spinner's own P (a new goroutine starts there).
const spscSpins = 256

// An spscWaiter parks one side of the spsc ring, futex style: the
// waiting side sets asleep and checks its condition once more before it
// blocks on token; the other side, after each store of its count, loads
// asleep and, if it is set, clears it and sends the one token. With
// sequentially consistent atomics one of the two sees the other's store,
// so no wake-up is lost, and the CAS on asleep sends at most one token per
// sleep, so the send never blocks. The fast path adds one atomic load per
// chunk to each side.
type spscWaiter struct {
	asleep atomic.Bool
	token  chan struct{}
}

// await returns once ready does, spinning first, then parking.
func (w *spscWaiter) await(ready func() bool) {
	for spins := 0; !ready(); spins++ {
		if spins < spscSpins {
			if spins%64 == 63 {
				runtime.Gosched() // let a goroutine queued on this P run
			}
			continue
		}
		w.asleep.Store(true)
		if ready() {
			if !w.asleep.CompareAndSwap(true, false) {
				<-w.token // the other side saw asleep and sent a token
			}
			return
		}
		<-w.token
	}
}

// wake wakes the other side if it is parked.
func (w *spscWaiter) wake() {
	if w.asleep.Load() && w.asleep.CompareAndSwap(true, false) {
		w.token <- struct{}{}
	}
}

// BenchmarkPipe64MiB: a producer goroutine writes 64 MiB into a pipe in
// 4 KiB writes while the benchmark goroutine reads 4 KiB at a time; the
// pipe buffers at most 1 MiB. One op is the whole 64 MiB.
func BenchmarkPipe64MiB(b *testing.B) {
	src, dst := payload(pipeBound, 0), make([]byte, pipeBound)
	for _, peer := range pipePeers {
		b.Run("peer="+peer.name, func(b *testing.B) {
			run := peer.setup()
			// One op before the timer starts, so that the peer's
			// one-time setup (a pool's slabs) is not counted.
			if _, err := run(src, dst, pipeTotal, pipeChunk); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(pipeTotal)
			b.ResetTimer()
			for range b.N {
				if _, err := run(src, dst, pipeTotal, pipeChunk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPipes checks that every pipe peer, and the spsc reference, delivers
// exactly what was written, in order, with more data than the pipe can
// buffer.
func TestPipes(t *testing.T) {
	const total = 4 * pipeBound
	src := payload(total, 3)
	for _, peer := range append(slices.Clip(pipePeers), pipePeer{"spsc", setupPipeSPSC}) {
		t.Run(peer.name, func(t *testing.T) {
			run := peer.setup()
			for round := range 2 {
				dst := make([]byte, total)
				if _, err := run(src, dst, total, pipeChunk); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if !bytes.Equal(dst, src) {
					t.Fatalf("round %d: read differs from what was written", round)
				}
			}
		})
	}
}
