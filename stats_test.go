package bytespool

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStatsOldestWaitAndBlockWaiters: while a writer is parked for blocks,
// OldestWait grows from one Stats call to the next and BlockWaiters counts
// it; a pipe reader parked for data is in Waiters but not in BlockWaiters.
func TestStatsOldestWaitAndBlockWaiters(t *testing.T) {
	pool := testPool(t, 2048, 1024)
	s := pool.Stats()
	require.Equal(t, 0, s.BlockWaiters)
	require.Equal(t, time.Duration(0), s.OldestWait)

	// A pipe reader parked for data: a waiter, not a block waiter.
	r, w := pool.NewPipe(0)
	read := async(func() (int, error) { return r.Read(make([]byte, 10)) })
	waitWaiters(t, pool, 1)
	s = pool.Stats()
	require.Equal(t, 1, s.Waiters)
	require.Equal(t, 0, s.BlockWaiters)
	require.Equal(t, time.Duration(0), s.OldestWait)

	held := holdBlocks(t, pool, 2)
	b := pool.NewBytes(0)
	defer b.Free()
	ch := parkedWrite(t, pool, b, fill(1024, 9), 2)
	s1 := pool.Stats()
	require.Equal(t, 2, s1.Waiters)
	require.Equal(t, 1, s1.BlockWaiters)
	require.Greater(t, s1.OldestWait, time.Duration(0))
	const gap = 10 * time.Millisecond
	time.Sleep(gap)
	s2 := pool.Stats()
	require.Equal(t, 1, s2.BlockWaiters)
	require.GreaterOrEqual(t, s2.OldestWait-s1.OldestWait, gap, "OldestWait must grow while the writer is stuck")

	held[0].Free()
	res := await(t, "the parked write", ch)
	require.NoError(t, res.err)
	s = pool.Stats()
	require.Equal(t, 0, s.BlockWaiters)
	require.Equal(t, time.Duration(0), s.OldestWait)
	held[1].Free()

	require.NoError(t, w.Close())
	res = await(t, "the parked pipe read", read)
	require.Equal(t, io.EOF, res.err)
	require.NoError(t, r.Close())
}

// TestStatsPeakInUse: PeakInUse keeps the largest count Stats has seen,
// and the count when a writer had to wait, even if no Stats call saw it.
func TestStatsPeakInUse(t *testing.T) {
	t.Run("observed", func(t *testing.T) {
		pool := testPool(t, 8<<10, 1024)
		require.Equal(t, 0, pool.Stats().PeakInUse)
		held := holdBlocks(t, pool, 3)
		s := pool.Stats()
		require.Equal(t, 3, s.BlocksInUse)
		require.Equal(t, 3, s.PeakInUse)
		for _, h := range held {
			h.Free()
		}
		s = pool.Stats()
		require.Equal(t, 0, s.BlocksInUse)
		require.Equal(t, 3, s.PeakInUse, "the peak stays")
		held = holdBlocks(t, pool, 2)
		require.Equal(t, 3, pool.Stats().PeakInUse)
		for _, h := range held {
			h.Free()
		}
	})
	t.Run("waited", func(t *testing.T) {
		pool := testPool(t, 4096, 1024)
		b1 := pool.NewBytes(0)
		defer b1.Free()
		writeAll(t, b1, fill(4096, 1)) // the whole pool
		b2 := pool.NewBytes(0)
		defer b2.Free()
		ch := asyncWrite(b2, fill(1024, 2))
		// Not waitWaiters: its Stats calls would see the peak themselves.
		eventually(t, func() bool { return pool.sema.Waiting() == 1 }, "the write must queue")
		n, err := b1.Read(make([]byte, 1024))
		require.NoError(t, err)
		require.Equal(t, 1024, n)
		require.NoError(t, await(t, "the parked write", ch).err)
		b1.Reset()
		b2.Reset()
		s := pool.Stats()
		require.Equal(t, 0, s.BlocksInUse)
		require.Equal(t, 4, s.PeakInUse, "the pool was full when the writer waited")
	})
}

// TestStatsRejected counts the writes refused with ErrPoolTooSmall or
// ErrBytesCapacityTooSmall, and nothing else.
func TestStatsRejected(t *testing.T) {
	pool := testPool(t, 4096, 1024)
	small := pool.NewBytes(100)
	big := pool.NewBytes(0)
	defer big.Free()
	require.Equal(t, uint64(0), pool.Stats().Rejected)

	_, err := small.Write(make([]byte, 101))
	require.Equal(t, ErrBytesCapacityTooSmall, err)
	require.Equal(t, uint64(1), pool.Stats().Rejected)

	_, err = big.Write(make([]byte, 5000))
	require.Equal(t, ErrPoolTooSmall, err)
	require.Equal(t, uint64(2), pool.Stats().Rejected)

	writeAll(t, small, make([]byte, 100))
	writeAll(t, big, make([]byte, 1000))
	_, err = small.Read(make([]byte, 1000))
	require.NoError(t, err)
	require.Equal(t, uint64(2), pool.Stats().Rejected, "successful calls count nothing")

	_, err = small.ReadFrom(bytes.NewReader(make([]byte, 200)))
	require.Equal(t, ErrBytesCapacityTooSmall, err)
	require.Equal(t, uint64(3), pool.Stats().Rejected)
	require.Equal(t, 100, small.Len(), "ReadFrom kept what fitted")
	small.Reset()

	_, err = big.WriteTo(small) // 1000 bytes into 100 - 100 read = room for 100
	require.Equal(t, ErrBytesCapacityTooSmall, err)
	require.Equal(t, uint64(4), pool.Stats().Rejected)

	_, err = big.ReadFrom(bytes.NewReader(make([]byte, 5000)))
	require.Equal(t, ErrPoolTooSmall, err)
	require.Equal(t, uint64(5), pool.Stats().Rejected)

	small.Free()
	_, err = small.Write([]byte("x"))
	require.Equal(t, ErrClosed, err)
	require.Equal(t, uint64(5), pool.Stats().Rejected, "ErrClosed is not a refusal")
}
