package bench

import (
	"cmp"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// latencyPeers names the bufferPeers that BenchmarkLatency measures.
var latencyPeers = []string{"bytespool", "syncpool-buffer", "original", "floor"}

// BenchmarkLatency measures the distribution of single Small1KiB ops while
// a second goroutine runs the same ops on the same pool without pause. It
// reports the 50th, 99th and 99.9th percentiles of the op time in ns
// ("p50-ns", "p99-ns", "p99.9-ns"). ns/op is the mean, and includes the
// time.Now and time.Since that each op is timed with; so do the
// percentiles.
func BenchmarkLatency(b *testing.B) {
	const size = 1 << 10
	for _, peer := range bufferPeers {
		if !slices.Contains(latencyPeers, peer.name) {
			continue
		}
		b.Run("peer="+peer.name, func(b *testing.B) {
			newOp := peer.setup(size)
			w, hammer := newWorker(newOp, size), newWorker(newOp, size)
			if err := w.op(w.src, w.dst, size); err != nil {
				b.Fatal(err)
			}
			samples := make([]time.Duration, b.N)

			var stop atomic.Bool
			hammered := make(chan error, 1)
			go func() {
				var err error
				for !stop.Load() && err == nil {
					err = hammer.op(hammer.src, hammer.dst, size)
				}
				hammered <- err
			}()

			b.ReportAllocs()
			b.SetBytes(size)
			b.ResetTimer()
			for i := range samples {
				start := time.Now()
				err := w.op(w.src, w.dst, size)
				samples[i] = time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			stop.Store(true)
			if err := <-hammered; err != nil {
				b.Fatal(err)
			}

			slices.Sort(samples)
			for _, q := range []struct {
				p    float64
				unit string
			}{{0.50, "p50-ns"}, {0.99, "p99-ns"}, {0.999, "p99.9-ns"}} {
				b.ReportMetric(float64(percentile(samples, q.p)), q.unit)
			}
		})
	}
}

// percentile returns the nearest-rank p-th percentile of sorted, which
// must not be empty: the smallest sample that is at least as large as a
// fraction p of all samples.
func percentile[T cmp.Ordered](sorted []T, p float64) T {
	i := int(float64(len(sorted))*p+0.999999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func TestPercentile(t *testing.T) {
	samples := make([]time.Duration, 1000)
	for i := range samples {
		samples[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0, 1}} {
		if got := percentile(samples, tc.p); got != tc.want {
			t.Errorf("percentile(1..1000, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(samples[:1], 0.999); got != 1 {
		t.Errorf("percentile of one sample = %v, want 1", got)
	}
}
