package bench

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkPaired measures bytespool against the reference of a speed
// target op by op, so that a change smaller than the noise between rounds
// of run.sh still shows. Each iteration times a batch of bytespool ops and
// a batch of the reference's ops back to back, the two in turn going
// first, and the benchmark reports the quartiles of the per-iteration
// ratio bytespool/reference ("ratio-p25", "ratio-p50", "ratio-p75"). A
// slowdown of the machine that lasts longer than one pair (a millisecond
// for Stream2MiB) slows both sides of the pair alike and cancels out of
// its ratio; in a round of run.sh the two are measured a second or more
// apart. ns/op is the time of one pair.
//
// It has no peer= part, so bench/cmd/ratios leaves it out.
func BenchmarkPaired(b *testing.B) {
	for _, w := range []struct {
		name        string
		size, chunk int
		batch       int // ops per timing: enough that a batch takes microseconds
		ref         string
	}{
		{"Stream2MiB", 2 << 20, 32 << 10, 1, "floor"},
		{"Small1KiB", 1 << 10, 1 << 10, 64, "syncpool-buffer"},
	} {
		b.Run("workload="+w.name+"/vs="+w.ref, func(b *testing.B) {
			ops := [2]roundTrip{newPeerOp(b, "bytespool", w.size), newPeerOp(b, w.ref, w.size)}
			src, dst := payload(w.size, 0), make([]byte, w.size)
			run := func(op roundTrip) time.Duration {
				start := time.Now()
				for range w.batch {
					if err := op(src, dst, w.chunk); err != nil {
						b.Fatal(err)
					}
				}
				return time.Since(start)
			}
			for _, op := range ops { // warm up outside the timer
				run(op)
			}
			ratios := make([]float64, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				var d [2]time.Duration
				first := i % 2
				d[first] = run(ops[first])
				d[1-first] = run(ops[1-first])
				ratios = append(ratios, float64(d[0])/float64(d[1]))
			}
			b.StopTimer()
			slices.Sort(ratios)
			for _, q := range []struct {
				p    float64
				unit string
			}{{0.25, "ratio-p25"}, {0.50, "ratio-p50"}, {0.75, "ratio-p75"}} {
				b.ReportMetric(percentile(ratios, q.p), q.unit)
			}
		})
	}
}

// newPeerOp returns a roundTrip of the named buffer peer, with the state
// that the peer's goroutines would share made for this one alone.
func newPeerOp(b *testing.B, name string, size int) roundTrip {
	i := slices.IndexFunc(bufferPeers, func(p bufferPeer) bool { return p.name == name })
	if i < 0 {
		b.Fatalf("no buffer peer %q", name)
	}
	return bufferPeers[i].setup(size)()
}
