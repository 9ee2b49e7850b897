package bytespoolprom_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/zjj/bytespool"
	bytespoolprom "github.com/zjj/bytespool/examples/prometheus"
)

// TestCollector scrapes a pool in a known state and checks every metric's
// name, type and value.
func TestCollector(t *testing.T) {
	pool, err := bytespool.New(bytespool.Config{MaxMemory: 8 << 10, BlockSize: 1024})
	require.NoError(t, err)
	a := pool.NewBytes(0)
	defer a.Free()
	_, err = a.Write(make([]byte, 3000)) // 3 blocks
	require.NoError(t, err)
	small := pool.NewBytes(10)
	defer small.Free()
	_, err = small.Write(make([]byte, 11))
	require.True(t, errors.Is(err, bytespool.ErrBytesCapacityTooSmall))
	_, err = a.Write(make([]byte, 9000))
	require.True(t, errors.Is(err, bytespool.ErrPoolTooSmall))
	s := pool.Stats()
	require.Equal(t, 3, s.BlocksInUse)

	c := bytespoolprom.New(pool, prometheus.Labels{"pool": "test"})
	want := fmt.Sprintf(`
# HELP bytespool_block_size_bytes Size of one block of the pool.
# TYPE bytespool_block_size_bytes gauge
bytespool_block_size_bytes{pool="test"} 1024
# HELP bytespool_blocks_capacity Capacity of the pool in blocks (0 when unlimited).
# TYPE bytespool_blocks_capacity gauge
bytespool_blocks_capacity{pool="test"} 8
# HELP bytespool_blocks_in_use Blocks held by Bytes and pipes.
# TYPE bytespool_blocks_in_use gauge
bytespool_blocks_in_use{pool="test"} 3
# HELP bytespool_blocks_allocated Blocks carved from the arena so far.
# TYPE bytespool_blocks_allocated gauge
bytespool_blocks_allocated{pool="test"} %d
# HELP bytespool_peak_blocks_in_use Most blocks in use at once since the pool was made (see Stats.PeakInUse).
# TYPE bytespool_peak_blocks_in_use gauge
bytespool_peak_blocks_in_use{pool="test"} 3
# HELP bytespool_waiters Goroutines parked waiting for blocks, or in pipes for data or room.
# TYPE bytespool_waiters gauge
bytespool_waiters{pool="test"} 0
# HELP bytespool_block_waiters Goroutines queued for blocks.
# TYPE bytespool_block_waiters gauge
bytespool_block_waiters{pool="test"} 0
# HELP bytespool_oldest_wait_seconds How long the longest current block waiter has waited.
# TYPE bytespool_oldest_wait_seconds gauge
bytespool_oldest_wait_seconds{pool="test"} 0
# HELP bytespool_waits_total Reservations that had to wait for blocks.
# TYPE bytespool_waits_total counter
bytespool_waits_total{pool="test"} 0
# HELP bytespool_wait_seconds_total Total time of the reservations that waited.
# TYPE bytespool_wait_seconds_total counter
bytespool_wait_seconds_total{pool="test"} 0
# HELP bytespool_rejected_total Writes refused with ErrPoolTooSmall or ErrBytesCapacityTooSmall.
# TYPE bytespool_rejected_total counter
bytespool_rejected_total{pool="test"} 2
# HELP bytespool_leaks_total Bytes and pipes reclaimed by the garbage collector without Free or Close.
# TYPE bytespool_leaks_total counter
bytespool_leaks_total{pool="test"} 0
`, s.BlocksAllocated)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want)))
	require.Equal(t, 12, testutil.CollectAndCount(c), "every Stats field but none twice")

	// The collector registers and lints cleanly.
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	require.Empty(t, problems)
}
