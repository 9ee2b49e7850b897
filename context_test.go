package bytespool

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// doneContexts are contexts that are over before the call: cancelled, and
// past their deadline.
func doneContexts() map[string]func() context.Context {
	return map[string]func() context.Context{
		"cancelled": func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		},
		"deadline": func() context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
			_ = cancel // the deadline has passed: the context is done and holds no timer
			return ctx
		},
	}
}

// TestContextFirst checks that each method taking a context returns 0,
// ctx.Err() at once when the context is already done, and changes
// nothing, even though the pool has free blocks, the pipe has room and
// the source has data.
func TestContextFirst(t *testing.T) {
	for name, mk := range doneContexts() {
		t.Run(name, func(t *testing.T) {
			pool := testPool(t, 16<<10, 1024)

			t.Run("Bytes.WriteContext", func(t *testing.T) {
				ctx := mk()
				b := pool.NewBytes(0)
				defer b.Free()
				writeAll(t, b, []byte("abc"))
				before := pool.Stats()
				n, err := b.WriteContext(ctx, []byte("xyz"))
				require.Equal(t, 0, n)
				require.Equal(t, ctx.Err(), err)
				require.Equal(t, 3, b.Len())
				require.Equal(t, before.BlocksInUse, pool.Stats().BlocksInUse)
				// An empty write too: the context comes first.
				n, err = b.WriteContext(ctx, nil)
				require.Equal(t, 0, n)
				require.Equal(t, ctx.Err(), err)
				require.Equal(t, "abc", string(readAll(t, b)))
			})

			t.Run("Bytes.ReadFromContext", func(t *testing.T) {
				ctx := mk()
				b := pool.NewBytes(0)
				defer b.Free()
				writeAll(t, b, []byte("abc"))
				src := bytes.NewReader([]byte("hello"))
				n, err := b.ReadFromContext(ctx, src)
				require.Equal(t, int64(0), n)
				require.Equal(t, ctx.Err(), err)
				require.Equal(t, 5, src.Len(), "the source must not be read")
				require.Equal(t, 1, pool.Stats().BlocksInUse)
				require.Equal(t, "abc", string(readAll(t, b)))
			})

			t.Run("PipeReader.ReadContext", func(t *testing.T) {
				ctx := mk()
				r, w := pool.NewPipe(0)
				n, err := w.Write([]byte("hello"))
				require.NoError(t, err)
				require.Equal(t, 5, n)
				before := pool.Stats().BlocksInUse
				buf := make([]byte, 10)
				n, err = r.ReadContext(ctx, buf)
				require.Equal(t, 0, n)
				require.Equal(t, ctx.Err(), err)
				require.Equal(t, before, pool.Stats().BlocksInUse)
				require.NoError(t, w.Close())
				got, err := io.ReadAll(r)
				require.NoError(t, err)
				require.Equal(t, "hello", string(got), "a done ReadContext consumes nothing")
				require.NoError(t, r.Close())
			})

			t.Run("PipeWriter.WriteContext", func(t *testing.T) {
				ctx := mk()
				r, w := pool.NewPipe(0)
				n, err := w.WriteContext(ctx, []byte("hello"))
				require.Equal(t, 0, n)
				require.Equal(t, ctx.Err(), err)
				require.Equal(t, 0, pool.Stats().BlocksInUse, "no block taken")
				require.NoError(t, w.Close())
				got, err := io.ReadAll(r)
				require.NoError(t, err)
				require.Empty(t, got)
				require.NoError(t, r.Close())
			})

			t.Run("PipeWriter.ReadFromContext", func(t *testing.T) {
				ctx := mk()
				r, w := pool.NewPipe(0)
				src := bytes.NewReader([]byte("hello"))
				n, err := w.ReadFromContext(ctx, src)
				require.Equal(t, int64(0), n)
				require.Equal(t, ctx.Err(), err)
				require.Equal(t, 5, src.Len(), "the source must not be read")
				require.Equal(t, 0, pool.Stats().BlocksInUse, "no block taken")
				require.NoError(t, w.Close())
				got, err := io.ReadAll(r)
				require.NoError(t, err)
				require.Empty(t, got)
				require.NoError(t, r.Close())
			})
		})
	}
}

// TestBytesReadFromContextStuck: the pool is full and the source has more
// data; ReadFromContext, waiting for a block, gives up at its deadline,
// keeps what it read, and holds no block.
func TestBytesReadFromContextStuck(t *testing.T) {
	pool := testPool(t, 4096, 1024)
	held := holdBlocks(t, pool, 3)
	defer func() {
		for _, h := range held {
			h.Free()
		}
	}()
	b := pool.NewBytes(0)
	defer b.Free()
	data := fill(3000, 1)
	src := bytes.NewReader(data)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	var n int64
	var err error
	within(t, "a ReadFromContext stuck on a full pool", func() { n, err = b.ReadFromContext(ctx, src) })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, int64(1024), n, "the one free block, filled")
	require.Equal(t, 1024, b.Len())
	require.Equal(t, len(data)-1024, src.Len(), "the source gave up only what b kept")
	s := pool.Stats()
	require.Equal(t, 4, s.BlocksInUse)
	require.Equal(t, 0, s.BlockWaiters, "the waiter left the queue")
	require.Equal(t, data[:1024], readAll(t, b))
	require.Equal(t, 3, pool.Stats().BlocksInUse, "no block leaked")
}

// TestBytesReadFromContextStuckProbe is the stuck ReadFromContext with a
// source that has no Len method: it reads into its small buffer before it
// waits for a block, and those bytes are lost when the deadline comes (as
// documented); b holds nothing and no block is lost.
func TestBytesReadFromContextStuckProbe(t *testing.T) {
	pool := testPool(t, 2048, 1024)
	held := holdBlocks(t, pool, 2)
	defer func() {
		for _, h := range held {
			h.Free()
		}
	}()
	b := pool.NewBytes(0)
	defer b.Free()
	data := fill(3000, 2)
	src := bytes.NewReader(data)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	var n int64
	var err error
	within(t, "a ReadFromContext stuck on a full pool", func() { n, err = b.ReadFromContext(ctx, noLen{src}) })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, int64(0), n)
	require.Equal(t, 0, b.Len())
	require.Equal(t, len(data)-probeSize, src.Len(), "the small buffer's bytes were read, and lost")
	require.Equal(t, 2, pool.Stats().BlocksInUse, "no block leaked")
}

// cancelOnRead returns its data in chunks and cancels a context on its
// first read: ReadFromContext must not read it again.
type cancelOnRead struct {
	data   []byte
	chunk  int
	cancel context.CancelFunc
	reads  int
}

func (r *cancelOnRead) Read(p []byte) (int, error) {
	r.reads++
	r.cancel()
	n := copy(p, r.data[:min(len(r.data), r.chunk)])
	r.data = r.data[n:]
	if len(r.data) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// TestReadFromContextBetweenReads: a context that ends during a read is
// seen before the next read; what the read brought is kept.
func TestReadFromContextBetweenReads(t *testing.T) {
	pool := testPool(t, 16<<10, 1024)
	t.Run("Bytes", func(t *testing.T) {
		b := pool.NewBytes(0)
		defer b.Free()
		ctx, cancel := context.WithCancel(context.Background())
		data := fill(5000, 3)
		src := &cancelOnRead{data: data, chunk: 700, cancel: cancel}
		n, err := b.ReadFromContext(ctx, src)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 1, src.reads)
		require.Equal(t, int64(probeSize), n, "the first read fills the small buffer")
		require.Equal(t, data[:probeSize], readAll(t, b))
	})
	t.Run("Pipe", func(t *testing.T) {
		r, w := pool.NewPipe(0)
		ctx, cancel := context.WithCancel(context.Background())
		data := fill(5000, 4)
		src := &cancelOnRead{data: data, chunk: 700, cancel: cancel}
		n, err := w.ReadFromContext(ctx, src)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 1, src.reads)
		require.Equal(t, int64(probeSize), n)
		require.NoError(t, w.Close())
		got, err := io.ReadAll(r)
		require.NoError(t, err)
		require.Equal(t, data[:probeSize], got)
		require.NoError(t, r.Close())
	})
}

// TestPipeReadFromContextStuck: a pipe's ReadFromContext waiting for room
// gives up at its deadline, having buffered what fitted.
func TestPipeReadFromContextStuck(t *testing.T) {
	pool := testPool(t, 16<<10, 1024)
	r, w := pool.NewPipe(2048)
	data := fill(5000, 5)
	src := bytes.NewReader(data)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	var n int64
	var err error
	within(t, "a pipe ReadFromContext stuck on a full pipe", func() { n, err = w.ReadFromContext(ctx, src) })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, int64(2048), n)
	require.Equal(t, len(data)-2048, src.Len())
	require.NoError(t, w.Close())
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, data[:2048], got)
	require.NoError(t, r.Close())
}
