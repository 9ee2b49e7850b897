package bench

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkPaired measures two ops against each other op by op, so that a
// change smaller than the noise between rounds of run.sh still shows. Each
// iteration times a batch of op= ops and a batch of the vs= reference's
// back to back, the two in turn going first, and the benchmark reports the
// quartiles of the per-iteration ratio op/reference ("ratio-p25",
// "ratio-p50", "ratio-p75"). A slowdown of the machine that lasts longer
// than one pair (a millisecond for Stream2MiB) slows both sides of the
// pair alike and cancels out of its ratio; in a round of run.sh the two
// are measured a second or more apart. ns/op is the time of one pair.
//
// For each of the two serial buffer targets it pairs bytespool, the bound
// (see setupBound) and the unsynced bound (setupUnsynced) with the target's
// reference, and then the bound with the unsynced bound and bytespool with
// the bound. That splits bytespool's ratio into three factors: what a
// buffer of 4 KiB blocks costs with no synchronization at all, what the
// synchronization that the contract and design card require adds, and
// what bytespool's own code adds on top.
//
// It has no peer= part, so bench/cmd/ratios leaves it out.
func BenchmarkPaired(b *testing.B) {
	type workload struct {
		name        string
		size, chunk int
		batch       int // ops per timing: enough that a batch takes microseconds
	}
	stream := workload{"Stream2MiB", 2 << 20, 32 << 10, 1}
	small := workload{"Small1KiB", 1 << 10, 1 << 10, 64}
	for _, pair := range []struct {
		w       workload
		op, ref string
	}{
		{stream, "bytespool", "floor"},
		{stream, "bound", "floor"},
		{stream, "unsynced", "floor"},
		{stream, "bound", "unsynced"},
		{stream, "bytespool", "bound"},
		{small, "bytespool", "syncpool-buffer"},
		{small, "bound", "syncpool-buffer"},
		{small, "unsynced", "syncpool-buffer"},
		{small, "bound", "unsynced"},
		{small, "bytespool", "bound"},
	} {
		w := pair.w
		b.Run("workload="+w.name+"/op="+pair.op+"/vs="+pair.ref, func(b *testing.B) {
			ops := [2]roundTrip{newPairedOp(b, pair.op, w.size), newPairedOp(b, pair.ref, w.size)}
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

// newPairedOp returns a roundTrip of the named buffer peer, or of the
// bound or the unsynced bound (see setupBound and setupUnsynced), with the
// state that the peer's goroutines would share made for this one alone.
func newPairedOp(tb testing.TB, name string, size int) roundTrip {
	switch name {
	case "bound":
		return setupBound(size)()
	case "unsynced":
		return setupUnsynced(size)()
	}
	i := slices.IndexFunc(bufferPeers, func(p bufferPeer) bool { return p.name == name })
	if i < 0 {
		tb.Fatalf("no buffer peer %q", name)
	}
	return bufferPeers[i].setup(size)()
}
