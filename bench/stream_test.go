package bench

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// payload returns n bytes of a pattern that does not repeat every block, so
// that a test catches bytes read from the wrong place.
func payload(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i) ^ byte(i>>8)*31 ^ byte(i>>16)*17 ^ seed
	}
	return p
}

// BenchmarkStream2MiB: get a buffer, write 2 MiB in 32 KiB writes, read it
// back in 32 KiB reads, release the buffer.
func BenchmarkStream2MiB(b *testing.B) { benchRoundTrip(b, 2<<20, 32<<10, false) }

// BenchmarkSmall1KiB: get a buffer, write 1 KiB, read 1 KiB, release.
func BenchmarkSmall1KiB(b *testing.B) { benchRoundTrip(b, 1<<10, 1<<10, false) }

// BenchmarkStream2MiBParallel is Stream2MiB under b.RunParallel.
func BenchmarkStream2MiBParallel(b *testing.B) { benchRoundTrip(b, 2<<20, 32<<10, true) }

// BenchmarkSmall1KiBParallel is Small1KiB under b.RunParallel.
func BenchmarkSmall1KiBParallel(b *testing.B) { benchRoundTrip(b, 1<<10, 1<<10, true) }

// A worker is the per-goroutine state of a buffer benchmark.
type worker struct {
	op       roundTrip
	src, dst []byte
}

func newWorker(newOp func() roundTrip, size int) *worker {
	return &worker{op: newOp(), src: payload(size, 0), dst: make([]byte, size)}
}

func benchRoundTrip(b *testing.B, size, chunk int, parallel bool) {
	for _, peer := range bufferPeers {
		b.Run("peer="+peer.name, func(b *testing.B) {
			newOp := peer.setup(size)
			// Every goroutine's buffers are made, and every op warmed up
			// once, before the timer starts, so that neither counts in
			// allocs/op even at -benchtime=1x.
			workers := make([]*worker, 1)
			if parallel {
				workers = make([]*worker, runtime.GOMAXPROCS(0))
			}
			for i := range workers {
				w := newWorker(newOp, size)
				if err := w.op(w.src, w.dst, chunk); err != nil {
					b.Fatal(err)
				}
				workers[i] = w
			}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			if !parallel {
				w := workers[0]
				for range b.N {
					if err := w.op(w.src, w.dst, chunk); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			var next atomic.Int32
			b.RunParallel(func(pb *testing.PB) {
				w := workers[next.Add(1)-1]
				for pb.Next() {
					if err := w.op(w.src, w.dst, chunk); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// roundTripShapes are the sizes and chunks the round-trip tests use: those
// of the two workloads, and chunks of a block and a half, which make the
// bound split free runs longer than a write needs.
var roundTripShapes = []struct{ size, chunk int }{{2 << 20, 32 << 10}, {1 << 10, 1 << 10}, {24 << 10, 6 << 10}}

// checkRoundTrips runs op, made for size bytes, rounds times in chunks of
// chunk bytes, each time with other bytes, and checks that it reads back
// exactly what it wrote.
func checkRoundTrips(t *testing.T, op roundTrip, size, chunk, rounds int) {
	dst := make([]byte, size)
	for round := range rounds {
		src := payload(size, byte(round))
		if err := op(src, dst, chunk); err != nil {
			t.Errorf("%d bytes, round %d: %v", size, round, err)
			return
		}
		if !bytes.Equal(dst, src) {
			t.Errorf("%d bytes, round %d: read back differs from what was written", size, round)
			return
		}
	}
}

// TestRoundTrip checks that every buffer peer, and BenchmarkPaired's three
// bounds, reads back exactly what was written, op after op, in every shape
// of roundTripShapes.
func TestRoundTrip(t *testing.T) {
	for _, name := range append([]string{"bound", "fenced", "unsynced"}, bufferPeerNames()...) {
		t.Run(name, func(t *testing.T) {
			for _, shape := range roundTripShapes {
				checkRoundTrips(t, newPairedSetup(t, name, shape.size)(), shape.size, shape.chunk, 3)
			}
		})
	}
}

// TestRoundTripParallel is TestRoundTrip with four goroutines on one setup
// of each peer at once, as the parallel workloads and pairs run them (the
// unsynced bound is for one goroutine only). With four goroutines, two
// share each of the bound's shards on a machine of two cores or fewer.
// Each goroutine moves about 1 MiB per shape, in enough rounds of the
// small shapes that the goroutines overlap.
func TestRoundTripParallel(t *testing.T) {
	for _, name := range append([]string{"bound", "fenced"}, bufferPeerNames()...) {
		t.Run(name, func(t *testing.T) {
			for _, shape := range roundTripShapes {
				setup := newPairedSetup(t, name, shape.size)
				var wg sync.WaitGroup
				for range 4 {
					op := setup()
					wg.Go(func() { checkRoundTrips(t, op, shape.size, shape.chunk, max(3, 1<<20/shape.size)) })
				}
				wg.Wait()
			}
		})
	}
}

// bufferPeerNames returns the names of bufferPeers.
func bufferPeerNames() []string {
	var names []string
	for _, peer := range bufferPeers {
		names = append(names, peer.name)
	}
	return names
}
