// Package bytespoolprom is an example Prometheus collector for the Stats of
// a bytespool.BytesPool. It lives in a module of its own, so that users of
// bytespool never download the Prometheus client.
//
// Register one collector per pool:
//
//	prometheus.MustRegister(bytespoolprom.New(pool, prometheus.Labels{"pool": "uploads"}))
package bytespoolprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zjj/bytespool"
)

// Collector reports a pool's Stats at each scrape, as the metrics below
// (prefix bytespool_). Gauges: block_size_bytes, blocks_capacity,
// blocks_in_use, blocks_allocated, peak_blocks_in_use, waiters,
// block_waiters, oldest_wait_seconds. Counters: waits_total,
// wait_seconds_total, rejected_total, leaks_total.
type Collector struct {
	pool    *bytespool.BytesPool
	metrics []metric
}

// metric is one metric of a Collector and how to read it from Stats.
type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(s *bytespool.Stats) float64
}

var _ prometheus.Collector = (*Collector)(nil)

// New returns a Collector of pool's Stats; constLabels (may be nil) tell
// the pools of a program apart.
func New(pool *bytespool.BytesPool, constLabels prometheus.Labels) *Collector {
	c := &Collector{pool: pool}
	add := func(name, help string, kind prometheus.ValueType, value func(s *bytespool.Stats) float64) {
		c.metrics = append(c.metrics, metric{
			desc:  prometheus.NewDesc("bytespool_"+name, help, nil, constLabels),
			kind:  kind,
			value: value,
		})
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	add("block_size_bytes", "Size of one block of the pool.", gauge,
		func(s *bytespool.Stats) float64 { return float64(s.BlockSize) })
	add("blocks_capacity", "Capacity of the pool in blocks (0 when unlimited).", gauge,
		func(s *bytespool.Stats) float64 { return float64(s.BlocksTotal) })
	add("blocks_in_use", "Blocks held by Bytes and pipes.", gauge,
		func(s *bytespool.Stats) float64 { return float64(s.BlocksInUse) })
	add("blocks_allocated", "Blocks carved from the arena so far.", gauge,
		func(s *bytespool.Stats) float64 { return float64(s.BlocksAllocated) })
	add("peak_blocks_in_use", "Most blocks in use at once since the pool was made (see Stats.PeakInUse).", gauge,
		func(s *bytespool.Stats) float64 { return float64(s.PeakInUse) })
	add("waiters", "Goroutines parked waiting for blocks, or in pipes for data or room.", gauge,
		func(s *bytespool.Stats) float64 { return float64(s.Waiters) })
	add("block_waiters", "Goroutines queued for blocks.", gauge,
		func(s *bytespool.Stats) float64 { return float64(s.BlockWaiters) })
	add("oldest_wait_seconds", "How long the longest current block waiter has waited.", gauge,
		func(s *bytespool.Stats) float64 { return s.OldestWait.Seconds() })
	add("waits_total", "Reservations that had to wait for blocks.", counter,
		func(s *bytespool.Stats) float64 { return float64(s.Waits) })
	add("wait_seconds_total", "Total time of the reservations that waited.", counter,
		func(s *bytespool.Stats) float64 { return s.WaitTime.Seconds() })
	add("rejected_total", "Writes refused with ErrPoolTooSmall or ErrBytesCapacityTooSmall.", counter,
		func(s *bytespool.Stats) float64 { return float64(s.Rejected) })
	add("leaks_total", "Bytes and pipes reclaimed by the garbage collector without Free or Close.", counter,
		func(s *bytespool.Stats) float64 { return float64(s.Leaks) })
	return c
}

// Describe sends the descriptors of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect takes one Stats snapshot and sends every metric from it.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stats()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&s))
	}
}
