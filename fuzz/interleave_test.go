package fuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/zjj/bytespool"
)

// Header of FuzzInterleavings.
const (
	ihShape     = iota // goroutines 2 + v%3; bit 2: live mode; bit 3: own maxLen in free mode
	ihBlockSize        // index into interleaveBlockSizes
	ihSlack            // extra pool blocks
	ihRecLo            // record size R = 1 + (lo | hi<<8) % 300
	ihRecHi
	ihOwnMaxLen // maxLen of the goroutines' own Bytes
	ihLen
)

// Ops of FuzzInterleavings, from op.kind()%iopCount; op.aux()%goroutines
// picks the goroutine that runs it. Goroutine 0 is the only one that reads
// the shared Bytes; in the others, the shared read ops become the op in
// parentheses.
const (
	iopOwnWrite       = iota // own WriteContext
	iopOwnRead               // own Read(n)
	iopOwnReadByte           // own ReadByte
	iopOwnWriteTo            // own WriteTo
	iopOwnReset              // own Reset
	iopOwnLen                // own Len
	iopOwnWriteString        // own WriteString in live mode, WriteContext in free mode
	iopSharedWrite           // shared WriteContext of one record
	iopSharedWrite2          // the same, to make them common
	iopSharedRead            // shared Read(n) (shared Len)
	iopSharedWriteTo         // shared WriteTo (shared write)
	iopSharedReadByte        // shared ReadByte (runtime.Gosched)
	iopCount
)

var interleaveBlockSizes = []int{1, 2, 3, 7, 8, 16, 32, 64, 100, 256, 1000, 4096}

const (
	// freeTimeout bounds every write in free mode, where circular waits
	// between the goroutines' own Bytes are possible and a timeout is a
	// legal outcome.
	freeTimeout = 200 * time.Millisecond
	// liveTimeout bounds every write in live mode, where every wait must
	// end: a timeout there is a failure (a lost wakeup, a leaked block).
	liveTimeout = 3 * time.Second
	// watchdog bounds the whole run.
	watchdog = 20 * time.Second
)

// record returns the shared record seq of goroutine g: g, seq (2 bytes,
// little-endian), then filler, cut to r bytes.
func record(g, seq, r int) []byte {
	b := make([]byte, 0, max(r, 3))
	b = append(b, byte(g), byte(seq), byte(seq>>8))
	b = append(b, pattern(uint32(g)<<16|uint32(seq), max(0, r-3))...)
	return b[:r]
}

// interleaveShape is the decoded header.
type interleaveShape struct {
	goroutines   int
	live         bool
	bs           int
	capBlocks    int
	recLen       int
	ownMaxLen    int
	writeTimeout time.Duration
}

func (s interleaveShape) String() string {
	mode := "free"
	if s.live {
		mode = "live"
	}
	return fmt.Sprintf("%s mode, %d goroutines, BlockSize %d, %d blocks, records of %d bytes, own maxLen %d",
		mode, s.goroutines, s.bs, s.capBlocks, s.recLen, s.ownMaxLen)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// decodeInterleaveShape reads the header.
//
// Free mode: the pool holds 1..3 records plus up to 7 blocks, and the own
// Bytes are unbounded or bounded, so goroutines can wait on each other in a
// circle; a write that times out wrote nothing and is otherwise legal.
//
// Live mode: every own Bytes is bounded by maxLen L, so it holds at most
// ceil(L/bs)+1 blocks, and the pool has room for all of them plus one
// record; the reader (goroutine 0) never writes and drains the shared Bytes
// until every writer is done. Then every wait has to end, and a timeout is
// a failure.
func decodeInterleaveShape(h []byte) interleaveShape {
	s := interleaveShape{
		goroutines: 2 + int(h[ihShape])%3,
		live:       h[ihShape]>>2&1 == 1,
		bs:         interleaveBlockSizes[int(h[ihBlockSize])%len(interleaveBlockSizes)],
		recLen:     1 + (int(h[ihRecLo])|int(h[ihRecHi])<<8)%300,
	}
	l := h[ihOwnMaxLen]
	ownMaxLen := max(1, (1+int(l)%3)*s.bs+int(l>>2)%5-2)
	recBlocks := ceilDiv(s.recLen, s.bs)
	slack := h[ihSlack]
	if s.live {
		s.ownMaxLen = ownMaxLen
		s.capBlocks = s.goroutines*(ceilDiv(ownMaxLen, s.bs)+1) + recBlocks + int(slack)%3
		s.writeTimeout = liveTimeout
	} else {
		if h[ihShape]>>3&1 == 1 {
			s.ownMaxLen = ownMaxLen
		}
		s.capBlocks = recBlocks*(1+int(slack)%3) + int(slack>>2)%8
		s.writeTimeout = freeTimeout
	}
	return s
}

// gOutcome is what one goroutine reports.
type gOutcome struct {
	fail     string
	trace    []string
	written  []int  // seqs of its shared records whose write returned nil
	readback []byte // goroutine 0: what it read from the shared Bytes
}

// FuzzInterleavings runs 2-4 goroutines, each on its own Bytes and all on
// one shared Bytes of a small capped pool. Own Bytes must match bytesModel
// exactly (a write that times out wrote nothing); the shared Bytes must
// yield exactly the records whose writes returned nil, each intact and each
// writer's in order; at the end no block is in use, nobody waits, and no
// goroutine is left.
func FuzzInterleavings(f *testing.F) {
	addSeeds(f, interleaveSeeds)
	f.Fuzz(func(t *testing.T, data []byte) {
		baseline := runtime.NumGoroutine()
		in := newInput(data, ihLen, 96)
		s := decodeInterleaveShape(in.head)
		scripts := make([][]op, s.goroutines)
		for _, o := range in.all() {
			g := int(o.aux()) % s.goroutines
			scripts[g] = append(scripts[g], o)
		}

		p, err := bytespool.New(bytespool.Config{MaxMemory: s.capBlocks * s.bs, BlockSize: s.bs})
		if err != nil {
			t.Fatalf("%v: New: %v", s, err)
		}
		shared := p.NewBytes(0)
		var writersDone atomic.Int32
		start := make(chan struct{})
		out := make([]gOutcome, s.goroutines)
		var wg sync.WaitGroup
		for g := range s.goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runInterleaved(g, s, scripts[g], p, shared, start, &writersDone, &out[g])
				if g != 0 {
					writersDone.Add(1)
				}
			}()
		}
		close(start)
		joined := make(chan struct{})
		go func() { wg.Wait(); close(joined) }()
		select {
		case <-joined:
		case <-time.After(watchdog):
			buf := make([]byte, 1<<20)
			t.Fatalf("%v: goroutines still running after %v:\n%s", s, watchdog, buf[:runtime.Stack(buf, true)])
		}

		if os.Getenv("BYTESPOOL_FUZZ_TRACE") != "" {
			nrec := 0
			for _, o := range out {
				nrec += len(o.written)
			}
			t.Logf("%v: %d records written, pool %+v", s, nrec, p.Stats())
			for g, o := range out {
				t.Logf("goroutine %d:\n  %s", g, strings.Join(o.trace, "\n  "))
			}
		}
		for g, o := range out {
			if o.fail != "" {
				t.Fatalf("%v: goroutine %d: %s\nits script:\n  %s", s, g, o.fail, strings.Join(o.trace, "\n  "))
			}
		}

		// Drain the shared Bytes and split it into records.
		var rest bytes.Buffer
		if _, err := shared.WriteTo(&rest); err != nil {
			t.Fatalf("%v: final shared WriteTo: %v", s, err)
		}
		got := append(out[0].readback, rest.Bytes()...)
		checkRecords(t, s, got, out)
		shared.Free()

		if st := p.Stats(); st.BlocksInUse != 0 || st.Waiters != 0 {
			t.Fatalf("%v: after every Bytes is freed: Stats %+v; want BlocksInUse 0, Waiters 0", s, st)
		}
		// The pool is whole again: the full cap can be taken at once.
		b := p.NewBytes(0)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		n, err := b.WriteContext(ctx, make([]byte, s.capBlocks*s.bs))
		cancel()
		if n != s.capBlocks*s.bs || err != nil {
			t.Fatalf("%v: writing the whole pool after the run = %d, %v; want %d, nil", s, n, err, s.capBlocks*s.bs)
		}
		b.Free()
		if st := p.Stats(); st.BlocksInUse != 0 {
			t.Fatalf("%v: Stats %+v after the last Free; want BlocksInUse 0", s, st)
		}
		noGoroutinesLeft(t, baseline, s.String())
	})
}

// noGoroutinesLeft waits until the number of goroutines is back to
// baseline, and fails with a dump of them if it is not within 5 s.
func noGoroutinesLeft(t *testing.T, baseline int, what string) {
	t.Helper()
	// assert.Eventually runs the condition in a goroutine of its own,
	// one at a time: hence the +1.
	if !assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= baseline+1 }, 5*time.Second, time.Millisecond,
		"%s: goroutines left behind (baseline %d)", what, baseline) {
		buf := make([]byte, 1<<20)
		t.Fatalf("%s: %d goroutines, baseline %d:\n%s", what, runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
	}
}

// checkRecords checks that got splits into intact records, exactly the
// multiset of those whose writes returned nil, each writer's in order.
func checkRecords(t *testing.T, s interleaveShape, got []byte, out []gOutcome) {
	t.Helper()
	r := s.recLen
	if len(got)%r != 0 {
		t.Fatalf("%v: the shared Bytes yielded %d bytes, not a whole number of %d-byte records", s, len(got), r)
	}
	want := map[string]int{}
	nwant := 0
	for g, o := range out {
		for _, seq := range o.written {
			want[string(record(g, seq, r))]++
			nwant++
		}
	}
	if len(got)/r != nwant {
		t.Fatalf("%v: the shared Bytes yielded %d records; %d writes returned nil", s, len(got)/r, nwant)
	}
	last := make([]int, s.goroutines)
	for i := range last {
		last[i] = -1
	}
	for i := 0; i < len(got); i += r {
		rec := got[i : i+r]
		if want[string(rec)] == 0 {
			t.Fatalf("%v: record %d of the shared Bytes, %x, was not written (or came twice)", s, i/r, rec)
		}
		want[string(rec)]--
		if r >= 3 {
			g, seq := int(rec[0]), int(rec[1])|int(rec[2])<<8
			if seq <= last[g] {
				t.Fatalf("%v: record %d of goroutine %d came after its record %d", s, seq, g, last[g])
			}
			last[g] = seq
		}
	}
}

// runInterleaved runs goroutine g's script.
func runInterleaved(g int, s interleaveShape, script []op, p *bytespool.BytesPool, shared *bytespool.Bytes,
	start <-chan struct{}, writersDone *atomic.Int32, o *gOutcome) {
	own := p.NewBytes(s.ownMaxLen)
	m := newBytesModel(s.bs, s.capBlocks, s.ownMaxLen)
	reader := g == 0
	seq := 0
	fail := func(format string, args ...any) { o.fail = fmt.Sprintf(format, args...) }
	note := func(format string, args ...any) {
		o.trace[len(o.trace)-1] += " = " + fmt.Sprintf(format, args...)
	}
	write := func(name string, src []byte, ctxWrite bool) {
		var n int
		var err error
		if ctxWrite {
			ctx, cancel := context.WithTimeout(context.Background(), s.writeTimeout)
			n, err = own.WriteContext(ctx, src)
			cancel()
		} else {
			n, err = own.WriteString(string(src))
		}
		note("%d, %v", n, err)
		before := m.clone()
		wn, werr := m.Write(src)
		if !s.live && werr == nil && n == 0 && errors.Is(err, context.DeadlineExceeded) {
			// Timed out while queued for blocks: wrote nothing.
			*m = *before
			return
		}
		if n != wn || !sameErr(err, werr) {
			fail("own %s(%d bytes) = %d, %v; want %d, %v", name, len(src), n, err, wn, werr)
		}
	}

	<-start
	for i, op := range script {
		if o.fail != "" {
			break
		}
		n := sizeFor(op.Size, s.bs)
		k := int(op.kind()) % iopCount
		if s.live && reader {
			switch k {
			case iopOwnWrite, iopOwnWriteString, iopSharedWrite, iopSharedWrite2:
				k = iopOwnLen // the reader never waits in live mode
			}
		}
		if !reader {
			switch k {
			case iopSharedRead:
				k = -1 // shared Len
			case iopSharedWriteTo:
				k = iopSharedWrite
			case iopSharedReadByte:
				k = -2 // Gosched
			}
		}
		fill := uint32(g)<<24 | uint32(i)<<8 | uint32(op.aux())
		switch k {
		case iopOwnWrite:
			o.trace = append(o.trace, fmt.Sprintf("own WriteContext(%d bytes)", n))
			write("WriteContext", pattern(fill, n), true)
		case iopOwnWriteString:
			o.trace = append(o.trace, fmt.Sprintf("own WriteString(%d bytes)", n))
			write("WriteString", pattern(fill, n), !s.live)
		case iopOwnRead:
			o.trace = append(o.trace, fmt.Sprintf("own Read(%d)", n))
			buf := make([]byte, n)
			got, err := own.Read(buf)
			note("%d, %v", got, err)
			want, werr := m.Read(n)
			if got != len(want) || !sameErr(err, werr) || !bytes.Equal(buf[:got], want) {
				fail("own Read(%d) = %d, %v, %x; want %d, %v, %x", n, got, err, buf[:got], len(want), werr, want)
			}
		case iopOwnReadByte:
			o.trace = append(o.trace, "own ReadByte()")
			got, err := own.ReadByte()
			note("%#x, %v", got, err)
			want, werr := m.ReadByte()
			if got != want || !sameErr(err, werr) {
				fail("own ReadByte = %#x, %v; want %#x, %v", got, err, want, werr)
			}
		case iopOwnWriteTo:
			o.trace = append(o.trace, "own WriteTo()")
			var buf bytes.Buffer
			got, err := own.WriteTo(&buf)
			note("%d, %v", got, err)
			want, werr := m.WriteTo()
			if got != int64(len(want)) || !sameErr(err, werr) || !bytes.Equal(buf.Bytes(), want) {
				fail("own WriteTo = %d, %v, %x; want %d, %v, %x", got, err, buf.Bytes(), len(want), werr, want)
			}
		case iopOwnReset:
			o.trace = append(o.trace, "own Reset()")
			own.Reset()
			m.Reset()
		case iopOwnLen:
			o.trace = append(o.trace, "own Len()")
		case iopSharedWrite, iopSharedWrite2:
			rec := record(g, seq, s.recLen)
			o.trace = append(o.trace, fmt.Sprintf("shared WriteContext(record %d)", seq))
			ctx, cancel := context.WithTimeout(context.Background(), s.writeTimeout)
			got, err := shared.WriteContext(ctx, rec)
			cancel()
			note("%d, %v", got, err)
			switch {
			case got == len(rec) && err == nil:
				o.written = append(o.written, seq)
			case got == 0 && errors.Is(err, bytespool.ErrPoolTooSmall):
			case got == 0 && !s.live && errors.Is(err, context.DeadlineExceeded):
			default:
				fail("shared WriteContext(record %d, %d bytes) = %d, %v; want %d, nil, or 0 and ErrPoolTooSmall%s",
					seq, len(rec), got, err, len(rec), map[bool]string{false: " or a timeout", true: ""}[s.live])
			}
			seq++
		case iopSharedRead:
			o.trace = append(o.trace, fmt.Sprintf("shared Read(%d)", n))
			buf := make([]byte, n)
			got, err := shared.Read(buf)
			note("%d, %v", got, err)
			if err != nil && !(got == 0 && errors.Is(err, io.EOF)) {
				fail("shared Read(%d) = %d, %v", n, got, err)
			}
			o.readback = append(o.readback, buf[:got]...)
		case iopSharedWriteTo:
			var buf bytes.Buffer
			var got int64
			var err error
			if i%2 == 0 {
				o.trace = append(o.trace, "shared WriteTo()")
				got, err = shared.WriteTo(&buf)
			} else {
				// Through a Bytes of the pool, which takes the blocks
				// themselves.
				o.trace = append(o.trace, "shared WriteTo(Bytes of the pool)")
				tmp := p.NewBytes(0)
				got, err = shared.WriteTo(tmp)
				if n, terr := tmp.WriteTo(&buf); terr != nil || n != got {
					fail("WriteTo out of the Bytes that took shared's blocks = %d, %v; want %d, nil", n, terr, got)
				}
				tmp.Free()
			}
			note("%d, %v", got, err)
			if err != nil || got != int64(buf.Len()) {
				fail("shared WriteTo = %d, %v, having written %d bytes", got, err, buf.Len())
			}
			o.readback = append(o.readback, buf.Bytes()...)
		case iopSharedReadByte:
			o.trace = append(o.trace, "shared ReadByte()")
			c, err := shared.ReadByte()
			note("%#x, %v", c, err)
			if err == nil {
				o.readback = append(o.readback, c)
			}
		case -1:
			o.trace = append(o.trace, "shared Len()")
			if l := shared.Len(); l < 0 {
				fail("shared Len = %d", l)
			}
		case -2:
			o.trace = append(o.trace, "Gosched()")
			runtime.Gosched()
		}
		if o.fail == "" {
			if got, want := own.Len(), m.Len(); got != want {
				fail("own Len = %d after the last op; want %d", got, want)
			}
		}
	}

	// The own Bytes reads back as its model, and gives its blocks back.
	var buf bytes.Buffer
	got, err := own.WriteTo(&buf)
	if want, _ := m.WriteTo(); o.fail == "" && (err != nil || !bytes.Equal(buf.Bytes(), want)) {
		fail("own Bytes at the end: WriteTo = %d, %v, %x; want %d, nil, %x", got, err, buf.Bytes(), len(want), want)
	}
	own.Free()

	if reader {
		// Keep the shared Bytes moving until every writer is done, so
		// that writers waiting for its blocks get them.
		rb := make([]byte, 4096)
		for writersDone.Load() < int32(s.goroutines-1) {
			n, _ := shared.Read(rb)
			o.readback = append(o.readback, rb[:n]...)
			if n == 0 {
				time.Sleep(20 * time.Microsecond)
			}
		}
	}
}
