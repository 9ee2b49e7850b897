package bytespool

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gateWriter blocks in Write until open is closed, after telling entered
// (once) that it got there; then it takes everything.
type gateWriter struct {
	entered chan struct{}
	open    chan struct{}
}

func newGateWriter() *gateWriter {
	return &gateWriter{entered: make(chan struct{}, 1), open: make(chan struct{})}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.open
	return len(p), nil
}

// gateReader blocks in Read until open is closed, then reports io.EOF.
type gateReader struct {
	entered chan struct{}
	open    chan struct{}
}

func (g *gateReader) Read(p []byte) (int, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.open
	return 0, io.EOF
}

// Calls that Free leaves behind must not touch the header once NewBytes
// has reissued it: a WriteTo in its writer, a WriteTo waiting for its turn,
// a Write waiting for blocks and a ReadFrom in its reader all end with
// ErrClosed, and the header's next owner keeps exactly its own data. Under
// -race this also catches a left-behind call that reads a field NewBytes
// writes without the lock (as takeTurn once read closed before gen).
func TestReissueUnderParkedCalls(t *testing.T) {
	const bs = 64
	rounds := 50
	if testing.Short() {
		rounds = 10
	}
	for _, zero := range []bool{false, true} {
		p, err := New(Config{MaxMemory: 4 * bs, BlockSize: bs, ZeroOnFree: zero})
		require.NoError(t, err)
		checkNoLeak(t, p)
		for round := range rounds {
			hog := p.NewBytes(0)
			writeAll(t, hog, fill(2*bs, 1)) // 2 of the 4 blocks; 1 more below
			b := p.NewBytes(0)
			writeAll(t, b, fill(bs/2, 2))

			gw := newGateWriter()
			wt1 := async(func() (int64, error) { return b.WriteTo(gw) })
			<-gw.entered // holds the turn, and the block, in its writer
			wt2 := async(func() (int64, error) { return b.WriteTo(io.Discard) })
			wr := parkedWrite(t, p, b, fill(2*bs, 3), 1) // 1 block free, 2 needed
			gr := &gateReader{entered: make(chan struct{}, 1), open: make(chan struct{})}
			rf := async(func() (int64, error) { return b.ReadFrom(noLen{gr}) })
			<-gr.entered
			time.Sleep(time.Millisecond) // wt2 reaches its wait for the turn

			b.Free()
			nb := p.NewBytes(0)                // most often b's header again
			mine := fill(bs-7, byte(10+round)) // the one free block: wt1 still holds b's
			writeAll(t, nb, mine)
			close(gw.open)
			close(gr.open)

			r1 := await(t, "the WriteTo in its writer", wt1)
			assert.ErrorIs(t, r1.err, ErrClosed)
			assert.ErrorIs(t, await(t, "the WriteTo waiting for its turn", wt2).err, ErrClosed)
			assert.ErrorIs(t, await(t, "the Write waiting for blocks", wr).err, ErrClosed)
			assert.ErrorIs(t, await(t, "the ReadFrom in its reader", rf).err, ErrClosed)
			require.Equal(t, mine, readAll(t, nb), "round %d: the new owner's data", round)
			nb.Free()
			hog.Free()
		}
		requireAllFree(t, p)
	}
}
