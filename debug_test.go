package bytespool

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// debugPool is a Debug pool of 16 blocks of 1 KiB, checked for leaks.
func debugPool(t testing.TB) *BytesPool {
	t.Helper()
	p, err := New(Config{MaxMemory: 16 << 10, BlockSize: 1024, Debug: true})
	require.NoError(t, err)
	checkNoLeak(t, p)
	return p
}

// recovered runs f and returns what it panicked with, as a string, or ""
// if it returned.
func recovered(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

// firstFreeForDebugTest frees b: the panics of later uses must name it.
//
//go:noinline
func firstFreeForDebugTest(b *Bytes) { b.Free() }

// TestDebugUseAfterFreePanics: in Debug mode every method of a freed Bytes
// panics, naming the method and the caller of the first Free; the pool
// stays usable.
func TestDebugUseAfterFreePanics(t *testing.T) {
	pool := debugPool(t)
	b := pool.NewBytes(0)
	writeAll(t, b, []byte("hello"))
	firstFreeForDebugTest(b)
	require.Equal(t, 0, pool.Stats().BlocksInUse)

	live := pool.NewBytes(0)
	defer live.Free()
	writeAll(t, live, []byte("live"))
	ctx := context.Background()
	uses := []struct {
		method string // as the panic names it
		use    func()
	}{
		{"Len", func() { b.Len() }},
		{"Write", func() { _, _ = b.Write([]byte("x")) }},
		{"Write", func() { _, _ = b.WriteString("x") }},
		{"Write", func() { _ = b.WriteByte('x') }},
		{"WriteContext", func() { _, _ = b.WriteContext(ctx, []byte("x")) }},
		{"Read", func() { _, _ = b.Read(make([]byte, 4)) }},
		{"ReadByte", func() { _, _ = b.ReadByte() }},
		{"ReadFrom", func() { _, _ = b.ReadFrom(bytes.NewReader([]byte("x"))) }},
		{"ReadFrom", func() { _, _ = b.ReadFromContext(ctx, bytes.NewReader([]byte("x"))) }},
		{"WriteTo", func() { _, _ = b.WriteTo(io.Discard) }},
		{"Reset", func() { b.Reset() }},
		{"Free", func() { b.Free() }},
		{"Close", func() { _ = b.Close() }},
		{"Write (as the io.Writer of a WriteTo)", func() { _, _ = live.WriteTo(b) }},
	}
	for i, u := range uses {
		msg := panicMessage(t, u.use)
		require.Contains(t, msg, "Bytes."+u.method+" after Free", "use %d (%s) must panic", i, u.method)
		require.Contains(t, msg, "bytespool.firstFreeForDebugTest", "the panic of use %d (%s) must name the first Free's caller", i, u.method)
	}
	// Every panic left the freed Bytes unlocked, and the live one whole.
	require.NotEmpty(t, panicMessage(t, func() { b.Len() }))
	require.Equal(t, "live", string(readAll(t, live)))
}

// TestNoDebugUseAfterFreeReturnsErrClosed: without Debug the same uses
// return ErrClosed (or nothing) and never panic.
func TestNoDebugUseAfterFreeReturnsErrClosed(t *testing.T) {
	pool := testPool(t, 16<<10, 1024)
	b := pool.NewBytes(0)
	writeAll(t, b, []byte("hello"))
	b.Free()
	require.Empty(t, recovered(func() {
		require.Equal(t, 0, b.Len())
		_, err := b.Write([]byte("x"))
		require.Equal(t, ErrClosed, err)
		_, err = b.Read(make([]byte, 4))
		require.Equal(t, ErrClosed, err)
		require.Equal(t, ErrClosed, b.Close())
	}))
}

// TestDebugHeadersNotReused: in Debug mode every NewBytes returns a new
// header; without it, freed headers are reused.
func TestDebugHeadersNotReused(t *testing.T) {
	const n = 100
	pool := debugPool(t)
	seen := make(map[*Bytes]bool, n)
	kept := make([]*Bytes, 0, n) // so the collector cannot reuse an address
	for range n {
		b := pool.NewBytes(0)
		require.False(t, seen[b], "a Debug pool reissued a freed header")
		seen[b] = true
		kept = append(kept, b)
		b.Free()
	}
	require.Len(t, kept, n)

	if raceEnabled {
		return // sync.Pool drops Puts at random under the race detector
	}
	plain := testPool(t, 16<<10, 1024)
	reused := false
	for range n {
		b := plain.NewBytes(0)
		b.Free()
		if plain.NewBytes(0) == b {
			reused = true
		}
		b.Free()
	}
	require.True(t, reused, "without Debug, a freed header is reused")
}

// TestDebugPipeClose: in Debug mode a pipe's ends still close as io.Pipe's
// do: a second Close is fine, a Write after the writer's Close fails.
func TestDebugPipeClose(t *testing.T) {
	pool := debugPool(t)
	r, w := pool.NewPipe(0)
	require.NoError(t, w.Close())
	require.NoError(t, w.Close())
	n, err := w.Write([]byte("x"))
	require.Equal(t, 0, n)
	require.Equal(t, io.ErrClosedPipe, err)
	require.NoError(t, r.Close())
	require.NoError(t, r.Close())
}

// BenchmarkDebug measures what Debug costs a 1 KiB NewBytes, Write, Read
// and Free.
func BenchmarkDebug(b *testing.B) {
	for _, debug := range []bool{false, true} {
		b.Run(fmt.Sprintf("debug=%v", debug), func(b *testing.B) {
			pool, err := New(Config{MaxMemory: 1 << 20, BlockSize: 4096, Debug: debug})
			require.NoError(b, err)
			data := make([]byte, 1024)
			buf := make([]byte, 1024)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				x := pool.NewBytes(0)
				_, _ = x.Write(data)
				_, _ = x.Read(buf)
				x.Free()
			}
		})
	}
}
