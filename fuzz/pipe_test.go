package fuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zjj/bytespool"
)

// Header of FuzzPipe.
const (
	phBlockSize   = iota // index into pipeBlockSizes
	phMaxBuffered        // see pipeMaxBuffered
	phCap                // pool cap: unlimited, one block, 2..7 blocks
	phClose              // close variant, v%closeVariants
	phFlags              // pfReadFrom | pfTwoWriters | pfEOFWithLast | pfWriteTo | pfPlainRead | pfLateReader
	phKLo                // where the reader closes, in the reader-close variants
	phKHi
	phLen
)

const (
	pfReadFrom    = 1 << iota // the writers use ReadFrom on a scripted source
	pfTwoWriters              // two concurrent writers
	pfEOFWithLast             // the scripted source returns io.EOF with its last chunk
	pfWriteTo                 // the reader uses WriteTo (writer-close variants)
	pfPlainRead               // the reader uses Read instead of ReadContext
	pfLateReader              // the reader starts once a writer waits (the pipe is full) or all are done
)

// Close variants.
const (
	pcWriterClose          = iota // w.Close: the reader ends with io.EOF
	pcWriterCloseWithError        // w.CloseWithError(errWriter)
	pcWriterCloseWithNil          // w.CloseWithError(nil): io.EOF
	pcReaderClose                 // r.Close after K bytes: writes fail with io.ErrClosedPipe
	pcReaderCloseWithError        // r.CloseWithError(errReader)
	pcReaderCloseWithNil          // r.CloseWithError(nil): io.ErrClosedPipe
	closeVariants
)

var closeVariantNames = []string{
	"w.Close", "w.CloseWithError(errWriter)", "w.CloseWithError(nil)",
	"r.Close", "r.CloseWithError(errReader)", "r.CloseWithError(nil)",
}

var (
	errWriter = errors.New("fuzz: the writer's error")
	errReader = errors.New("fuzz: the reader's error")
)

var pipeBlockSizes = []int{1, 2, 3, 7, 8, 16, 64, 100, 512, 4096}

// pipeWait bounds every wait of FuzzPipe; every scenario is live, so a wait
// this long is a failure.
const pipeWait = 10 * time.Second

// pipeMaxBuffered decodes maxBuffered: 0, less than one block, a multiple
// of the block size, or anything up to four blocks.
func pipeMaxBuffered(v byte, bs int) int {
	switch v % 4 {
	case 0:
		return 0
	case 1:
		return 1 + int(v>>2)%max(1, bs-1)
	case 2:
		return bs * (1 + int(v>>2)%4)
	default:
		return 1 + int(v>>2)*37%(4*bs)
	}
}

// streamByte is byte i of writer w's stream. With two writers the low bit
// names the writer, so the reader can split what it got per writer.
func streamByte(w, i int, two bool) byte {
	v := byte((uint32(i)*2654435761 + uint32(w)*0x9E37) >> 24)
	if two {
		v = v&^1 | byte(w)
	}
	return v
}

func stream(w, n int, two bool) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = streamByte(w, i, two)
	}
	return b
}

// chunkReader returns data in the given chunk sizes (cut to the caller's
// buffer), then io.EOF: separately, or with the last chunk.
type chunkReader struct {
	data        []byte
	chunks      []int
	eofWithLast bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	c := len(r.data)
	if len(r.chunks) > 0 {
		c = min(r.chunks[0], c)
	}
	n := min(c, len(p))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	if len(r.chunks) > 0 {
		if r.chunks[0] -= n; r.chunks[0] <= 0 {
			r.chunks = r.chunks[1:]
		}
	}
	if len(r.data) == 0 && r.eofWithLast {
		return n, io.EOF
	}
	return n, nil
}

type pipeShape struct {
	bs, maxBuffered, capBlocks int
	variant                    int
	flags                      byte
	writers                    int
	k                          int // the reader closes after k bytes (reader-close variants)
}

func (s pipeShape) String() string {
	return fmt.Sprintf("BlockSize %d, pool %d blocks, NewPipe(%d), %d writer(s) with %s, %sreader with %s, close: %s (K %d)",
		s.bs, s.capBlocks, s.maxBuffered, s.writers,
		map[bool]string{false: "WriteContext", true: "ReadFrom"}[s.flags&pfReadFrom != 0],
		map[bool]string{false: "", true: "late "}[s.flags&pfLateReader != 0],
		map[bool]string{false: "Read chunks", true: "WriteTo"}[s.flags&pfWriteTo != 0 && s.variant < pcReaderClose],
		closeVariantNames[s.variant], s.k)
}

// FuzzPipe streams writer chunk scripts through a NewPipe to a reader chunk
// script, then closes one end as the header says. The reader must get
// exactly the bytes written, each writer's in order, up to the close point,
// and both ends must see the error the close variant implies. While it runs,
// the pool never has more blocks in use than maxBuffered allows (one
// writer); at the end no block is in use and no goroutine is left.
func FuzzPipe(f *testing.F) {
	addSeeds(f, pipeSeeds)
	f.Fuzz(func(t *testing.T, data []byte) {
		baseline := runtime.NumGoroutine()
		in := newInput(data, phLen, 64)
		h := in.head
		s := pipeShape{
			bs:      pipeBlockSizes[int(h[phBlockSize])%len(pipeBlockSizes)],
			variant: int(h[phClose]) % closeVariants,
			flags:   h[phFlags],
			writers: 1,
		}
		s.maxBuffered = pipeMaxBuffered(h[phMaxBuffered], s.bs)
		switch h[phCap] % 3 {
		case 1:
			s.capBlocks = 1
		case 2:
			s.capBlocks = 2 + int(h[phCap]>>2)%6
		}
		if s.flags&pfTwoWriters != 0 {
			s.writers = 2
		}
		two := s.writers == 2
		chunks := make([][]int, s.writers)
		var readChunks []int
		for _, o := range in.all() {
			n := sizeFor(o.Size, s.bs)
			if o.kind()&1 == 1 {
				readChunks = append(readChunks, n)
			} else {
				w := int(o.aux()) % s.writers
				chunks[w] = append(chunks[w], n)
			}
		}
		streams := make([][]byte, s.writers)
		total := 0
		for w := range streams {
			n := 0
			for _, c := range chunks[w] {
				n += c
			}
			streams[w] = stream(w, n, two)
			total += n
		}
		readerCloses := s.variant >= pcReaderClose
		if readerCloses {
			s.k = (int(h[phKLo]) | int(h[phKHi])<<8) % (total + 1)
		}
		var wantReadErr, wantWriteErr error // what the reader ends with, what writes after the close return
		switch s.variant {
		case pcWriterClose, pcWriterCloseWithNil:
			wantReadErr, wantWriteErr = io.EOF, io.ErrClosedPipe
		case pcWriterCloseWithError:
			wantReadErr, wantWriteErr = errWriter, io.ErrClosedPipe
		case pcReaderClose, pcReaderCloseWithNil:
			wantReadErr, wantWriteErr = io.ErrClosedPipe, io.ErrClosedPipe
		case pcReaderCloseWithError:
			wantReadErr, wantWriteErr = io.ErrClosedPipe, errReader
		}

		p, err := bytespool.New(bytespool.Config{MaxMemory: s.capBlocks * s.bs, BlockSize: s.bs})
		if err != nil {
			t.Fatalf("%v: New: %v", s, err)
		}
		r, w := p.NewPipe(s.maxBuffered)

		var (
			mu        sync.Mutex
			failures  []string
			closing   atomic.Bool // the reader is about to close
			rclosed   = make(chan struct{})
			delivered = make([]int64, s.writers)
		)
		fail := func(format string, args ...any) {
			mu.Lock()
			failures = append(failures, fmt.Sprintf(format, args...))
			mu.Unlock()
		}

		// Watch the blocks in use.
		bound := 0
		if s.writers == 1 && s.maxBuffered > 0 {
			bound = ceilDiv(s.maxBuffered, s.bs) + 2
			if s.flags&pfReadFrom != 0 {
				bound++ // the block ReadFrom reads into
			}
		}
		if s.capBlocks > 0 && (bound == 0 || s.capBlocks < bound) {
			bound = s.capBlocks
		}
		stopMonitor := make(chan struct{})
		var peak atomic.Int64
		var monitorWG sync.WaitGroup
		monitorWG.Add(1)
		go func() {
			defer monitorWG.Done()
			for {
				if n := int64(p.Stats().BlocksInUse); n > peak.Load() {
					peak.Store(n)
				}
				select {
				case <-stopMonitor:
					return
				case <-time.After(50 * time.Microsecond):
				}
			}
		}()

		var wg sync.WaitGroup
		// Writers.
		writersDone := make(chan struct{})
		// wrote counts the writers that have written everything; when
		// the reader closes, they then wait for that close, so the late
		// reader must not wait for writersDone alone.
		var wrote atomic.Int32
		var writersWG sync.WaitGroup
		for wi := range s.writers {
			writersWG.Add(1)
			go func() {
				defer writersWG.Done()
				// checkErr vets a write error: only the reader's close
				// may stop a writer.
				checkErr := func(what string, err error) bool {
					if err == nil {
						return true
					}
					if !readerCloses || !closing.Load() || !sameErr(err, wantWriteErr) {
						fail("writer %d: %s: %v (reader closing: %v); want nil%s", wi, what, err, closing.Load(),
							map[bool]string{false: "", true: fmt.Sprintf(" or, once the reader closed, %v", wantWriteErr)}[readerCloses])
					}
					return false
				}
				if s.flags&pfReadFrom != 0 {
					src := &chunkReader{data: streams[wi], chunks: append([]int(nil), chunks[wi]...), eofWithLast: s.flags&pfEOFWithLast != 0}
					n, err := w.ReadFrom(src)
					delivered[wi] = n
					if checkErr("ReadFrom", err) && n != int64(len(streams[wi])) {
						fail("writer %d: ReadFrom = %d, nil; want %d, nil", wi, n, len(streams[wi]))
					}
				} else {
					off := 0
					for _, c := range chunks[wi] {
						ctx, cancel := context.WithTimeout(context.Background(), pipeWait)
						n, err := w.WriteContext(ctx, streams[wi][off:off+c])
						cancel()
						delivered[wi] += int64(n)
						if n < 0 || n > c || (err == nil && n != c) {
							fail("writer %d: WriteContext(%d bytes) = %d, %v", wi, c, n, err)
							break
						}
						off += c
						if !checkErr(fmt.Sprintf("WriteContext(%d bytes) = %d", c, n), err) {
							break
						}
					}
				}
				wrote.Add(1)
				if readerCloses {
					select {
					case <-rclosed:
					case <-time.After(pipeWait):
						fail("writer %d: the reader did not close within %v", wi, pipeWait)
						return
					}
					if n, err := w.Write([]byte{1}); n != 0 || !sameErr(err, wantWriteErr) {
						fail("writer %d: Write after the reader closed = %d, %v; want 0, %v", wi, n, err, wantWriteErr)
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			writersWG.Wait()
			close(writersDone)
			if readerCloses {
				w.Close()
				return
			}
			switch s.variant {
			case pcWriterClose:
				w.Close()
			case pcWriterCloseWithError:
				w.CloseWithError(errWriter)
			case pcWriterCloseWithNil:
				w.CloseWithError(nil)
			}
			if n, err := w.Write([]byte{1}); n != 0 || !sameErr(err, wantWriteErr) {
				fail("Write after the writer closed = %d, %v; want 0, %v", n, err, wantWriteErr)
			}
		}()

		// Reader.
		var got []byte
		wg.Add(1)
		go func() {
			defer wg.Done()
			read := func(buf []byte) (int, error) {
				if s.flags&pfPlainRead != 0 {
					return r.Read(buf)
				}
				ctx, cancel := context.WithTimeout(context.Background(), pipeWait)
				defer cancel()
				return r.ReadContext(ctx, buf)
			}
			if s.flags&pfLateReader != 0 {
				deadline := time.Now().Add(pipeWait)
			wait:
				for p.Stats().Waiters == 0 && int(wrote.Load()) < s.writers {
					select {
					case <-writersDone:
						break wait
					case <-time.After(20 * time.Microsecond):
					}
					if time.Now().After(deadline) {
						fail("reader: the writers neither waited nor finished within %v", pipeWait)
						return
					}
				}
				// The writer is parked on a full pipe: the pipe holds
				// the most it will hold now.
				if n := int64(p.Stats().BlocksInUse); n > peak.Load() {
					peak.Store(n)
				}
			}
			next := func(i int) int {
				if i < len(readChunks) {
					return readChunks[i]
				}
				return []int{s.bs, 1, 3*s.bs + 1, 4096}[i%4]
			}
			if !readerCloses && s.flags&pfWriteTo != 0 {
				var buf bytes.Buffer
				n, err := r.WriteTo(&buf)
				got = buf.Bytes()
				want := wantReadErr
				if want == io.EOF {
					want = nil
				}
				if n != int64(len(got)) || !sameErr(err, want) {
					fail("reader: WriteTo = %d, %v, having written %d bytes; want %v", n, err, len(got), want)
				}
				return
			}
			for i := 0; ; i++ {
				c := next(i)
				if readerCloses {
					if len(got) == s.k {
						break
					}
					c = min(c, s.k-len(got))
				}
				buf := make([]byte, c)
				n, err := read(buf)
				got = append(got, buf[:max(0, min(n, c))]...)
				switch {
				case n < 0 || n > c:
					fail("reader: Read(%d bytes) = %d, %v", c, n, err)
					return
				case c == 0 && (n != 0 || err != nil):
					fail("reader: Read(0 bytes) = %d, %v; want 0, nil", n, err)
					return
				case err == nil && n == 0 && c > 0:
					fail("reader: Read(%d bytes) = 0, nil", c)
					return
				case err != nil:
					if readerCloses || n != 0 || !sameErr(err, wantReadErr) {
						fail("reader: Read(%d bytes) = %d, %v after %d bytes; want 0, %v at the end", c, n, err, len(got), wantReadErr)
						return
					}
					// The end is sticky.
					if n, err := read(make([]byte, 1)); n != 0 || !sameErr(err, wantReadErr) {
						fail("reader: Read after the end = %d, %v; want 0, %v", n, err, wantReadErr)
					}
					return
				}
			}
			closing.Store(true)
			switch s.variant {
			case pcReaderClose:
				r.Close()
			case pcReaderCloseWithError:
				r.CloseWithError(errReader)
			case pcReaderCloseWithNil:
				r.CloseWithError(nil)
			}
			close(rclosed)
			if n, err := read(make([]byte, 1)); n != 0 || !sameErr(err, io.ErrClosedPipe) {
				fail("reader: Read after its own close = %d, %v; want 0, %v", n, err, io.ErrClosedPipe)
			}
		}()

		joined := make(chan struct{})
		go func() { wg.Wait(); close(joined) }()
		select {
		case <-joined:
		case <-time.After(3 * pipeWait):
			buf := make([]byte, 1<<20)
			dump := buf[:runtime.Stack(buf, true)]
			r.CloseWithError(errors.New("watchdog"))
			w.CloseWithError(errors.New("watchdog"))
			t.Fatalf("%v: still running after %v:\n%s", s, 3*pipeWait, dump)
		}
		close(stopMonitor)
		monitorWG.Wait()
		if len(failures) > 0 {
			t.Fatalf("%v:\n%s", s, failures[0])
		}

		// What came out is what went in, each writer's bytes in order.
		for wi := range s.writers {
			var sub []byte
			for _, c := range got {
				if !two || int(c&1) == wi {
					sub = append(sub, c)
				}
			}
			if !bytes.Equal(sub, streams[wi][:min(len(sub), len(streams[wi]))]) || len(sub) > len(streams[wi]) {
				t.Fatalf("%v: writer %d: the reader got %d bytes that are not a prefix of the %d written", s, wi, len(sub), len(streams[wi]))
			}
			if !readerCloses && len(sub) != len(streams[wi]) {
				t.Fatalf("%v: writer %d wrote %d bytes; the reader got %d", s, wi, len(streams[wi]), len(sub))
			}
			if int64(len(sub)) > delivered[wi] {
				t.Fatalf("%v: writer %d delivered %d bytes; the reader got %d", s, wi, delivered[wi], len(sub))
			}
		}
		if readerCloses && len(got) != s.k {
			t.Fatalf("%v: the reader got %d bytes before closing; want %d", s, len(got), s.k)
		}

		if bound > 0 && int(peak.Load()) > bound {
			t.Fatalf("%v: %d blocks in use at once; at most %d expected", s, peak.Load(), bound)
		}
		r.Close()
		r.Close() // harmless twice
		w.Close()
		if st := p.Stats(); st.BlocksInUse != 0 || st.Waiters != 0 {
			t.Fatalf("%v: Stats %+v after both ends closed; want BlocksInUse 0, Waiters 0", s, st)
		}
		noGoroutinesLeft(t, baseline, s.String())
	})
}
