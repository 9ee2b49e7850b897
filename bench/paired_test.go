package bench

import (
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPaired measures two ops against each other op by op, so that a
// change smaller than the noise between rounds of run.sh still shows. Each
// iteration times the op= side and the vs= reference back to back, the two
// in turn going first, and the benchmark reports the quartiles of the
// per-iteration ratio op/reference ("ratio-p25", "ratio-p50",
// "ratio-p75"). A slowdown of the machine that lasts longer than one pair
// (a millisecond for Stream2MiB) slows both sides of the pair alike and
// cancels out of its ratio; in a round of run.sh the two are measured a
// second or more apart. ns/op is the time of one pair, setup included.
//
// The pairs, by workload:
//   - Stream2MiB and Small1KiB, the two serial buffer targets: bytespool,
//     the bound (see setupBound) and the unsynced bound (setupUnsynced)
//     against the target's reference, then the bound against the unsynced
//     bound and bytespool against the bound. That splits bytespool's ratio
//     into three factors: what a buffer of 4 KiB blocks costs with no
//     synchronization at all, what the synchronization that the contract
//     and design card require adds, and what bytespool's own code adds.
//     For Small1KiB, also the fenced bound (setupFenced) against the
//     reference: the least any design that keeps the contract can cost.
//   - Stream2MiBParallel and Small1KiBParallel, the two parallel buffer
//     targets: bytespool and the bound against the target's reference,
//     and bytespool against the bound. A side runs one goroutine per P on
//     one setup of its peer, as the parallel benchmarks do, each doing
//     a batch of ops from a common start (see timedParallel); the side's
//     time runs from the first start to the last finish. For
//     Small1KiBParallel, also the fenced bound against the reference.
//     There is no unsynced bound here: it is for one goroutine only.
//   - Small1KiB, Small1KiBParallel and Stream2MiBParallel: bytespool
//     against the two capped peers, original and kafka (the bench issue
//     asks bytespool to be at least 3x faster than each there), and the
//     yardsticks of that target: the fenced bound, the bound and the floor
//     against each capped peer, and in Small1KiB the unsynced bound too.
//     The fenced bound's ratio is the least any design that keeps the
//     contract can reach, so where it misses the target, so would any;
//     the floor's is the least any buffer that copies can reach.
//   - Pipe64MiB: bytespool and the spsc reference (see setupPipeSPSC)
//     against the floor, and bytespool against spsc: what moving bytes
//     between two goroutines costs, and what bytespool's pipe adds to it.
//     Also bytespool and spsc against each pipe peer (condring, io-pipe,
//     nio and ringbuffer), and condring against the floor: where spsc
//     misses the pipe-peer target, so would any pipe.
//   - GC: collections with 256 MiB held in bytespool, and with only what
//     the reclaim contract costs any design (the addcleanup peer), against
//     collections with nothing held; bytespool against addcleanup; and
//     nothing against nothing, which shows the noise of the measurement
//     itself. One side of a GC pair makes its data, collects once untimed,
//     times gcPerPair collections, then releases the data and collects it
//     untimed with debug.FreeOSMemory: otherwise the runtime would give the
//     freed memory back to the OS in the background while the other side
//     is timed.
//
// It has no peer= part, so bench/cmd/ratios and bench/cmd/chart leave it
// out.
func BenchmarkPaired(b *testing.B) {
	type workload struct {
		name        string
		size, chunk int
		batch       int  // ops per timing (per goroutine): enough that a batch takes microseconds
		parallel    bool // one goroutine per P (see timedParallel)
	}
	stream := workload{"Stream2MiB", 2 << 20, 32 << 10, 1, false}
	small := workload{"Small1KiB", 1 << 10, 1 << 10, 64, false}
	streamPar := workload{"Stream2MiBParallel", 2 << 20, 32 << 10, 1, true}
	smallPar := workload{"Small1KiBParallel", 1 << 10, 1 << 10, 1024, true}
	for _, pair := range []struct {
		w       workload
		op, ref string
	}{
		// Stream2MiB and Small1KiB: bytespool's ratio to the target's
		// reference, split into its factors (see the doc comment).
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
		{small, "fenced", "syncpool-buffer"},
		// The parallel targets: the same, without the unsynced bound.
		{streamPar, "bytespool", "floor"},
		{streamPar, "bound", "floor"},
		{streamPar, "bytespool", "bound"},
		{smallPar, "bytespool", "syncpool-buffer"},
		{smallPar, "bound", "syncpool-buffer"},
		{smallPar, "bytespool", "bound"},
		{smallPar, "fenced", "syncpool-buffer"},
		// bytespool against the capped peers.
		{small, "bytespool", "original"},
		{small, "bytespool", "kafka"},
		{smallPar, "bytespool", "original"},
		{smallPar, "bytespool", "kafka"},
		{streamPar, "bytespool", "original"},
		{streamPar, "bytespool", "kafka"},
		// Yardsticks of the capped-peer targets: the bounds, and the
		// floor, against the capped peers. If the fenced bound misses a
		// target, no design that keeps the contract can meet it; if the
		// floor does, no buffer that copies can.
		{small, "fenced", "original"},
		{small, "bound", "original"},
		{small, "unsynced", "original"},
		{small, "floor", "original"},
		{small, "fenced", "kafka"},
		{small, "bound", "kafka"},
		{small, "unsynced", "kafka"},
		{small, "floor", "kafka"},
		{smallPar, "fenced", "original"},
		{smallPar, "bound", "original"},
		{smallPar, "floor", "original"},
		{smallPar, "fenced", "kafka"},
		{smallPar, "bound", "kafka"},
		{smallPar, "floor", "kafka"},
		{streamPar, "fenced", "original"},
		{streamPar, "bound", "original"},
		{streamPar, "floor", "original"},
		{streamPar, "fenced", "kafka"},
		{streamPar, "bound", "kafka"},
		{streamPar, "floor", "kafka"},
	} {
		w := pair.w
		b.Run(pairName(w.name, pair.op, pair.ref), func(b *testing.B) {
			timed := func(name string) func() time.Duration {
				setup := newPairedSetup(b, name, w.size)
				if w.parallel {
					return timedParallel(b, setup, w.size, w.chunk, w.batch)
				}
				wk := newWorker(setup, w.size)
				return func() time.Duration {
					start := time.Now()
					for range w.batch {
						if err := wk.op(wk.src, wk.dst, w.chunk); err != nil {
							b.Fatal(err)
						}
					}
					return time.Since(start)
				}
			}
			pairUp(b, timed(pair.op), timed(pair.ref))
		})
	}
	for _, pair := range [][2]string{
		// What moving bytes between two goroutines costs, and what
		// bytespool's pipe adds to it.
		{"bytespool", "floor"},
		{"spsc", "floor"},
		{"bytespool", "spsc"},
		{"condring", "floor"},
		// bytespool against every pipe peer, so that the target's "in
		// every round" can be checked round by round.
		{"bytespool", "condring"},
		{"bytespool", "io-pipe"},
		{"bytespool", "nio"},
		{"bytespool", "ringbuffer"},
		// The yardstick of that target: the spsc reference against each
		// pipe peer. Where spsc misses it, so would any pipe.
		{"spsc", "condring"},
		{"spsc", "io-pipe"},
		{"spsc", "nio"},
		{"spsc", "ringbuffer"},
	} {
		b.Run(pairName("Pipe64MiB", pair[0], pair[1]), func(b *testing.B) {
			src, dst := payload(pipeBound, 0), make([]byte, pipeBound)
			timed := func(run pipeRun) func() time.Duration {
				return func() time.Duration {
					start := time.Now()
					if _, err := run(src, dst, pipeTotal, pipeChunk); err != nil {
						b.Fatal(err)
					}
					return time.Since(start)
				}
			}
			pairUp(b, timed(newPairedPipe(b, pair[0])), timed(newPairedPipe(b, pair[1])))
		})
	}
	for _, pair := range [][2]string{{"bytespool", "none"}, {"addcleanup", "none"}, {"bytespool", "addcleanup"}, {"none", "none"}} {
		b.Run(pairName("GC", pair[0], pair[1]), func(b *testing.B) {
			timed := func(peer gcPeer) func() time.Duration {
				return func() time.Duration {
					release := peer.hold(b)
					runtime.GC()
					start := time.Now()
					for range gcPerPair {
						runtime.GC()
					}
					d := time.Since(start)
					release()
					debug.FreeOSMemory()
					return d
				}
			}
			pairUp(b, timed(gcPeerNamed(b, pair[0])), timed(gcPeerNamed(b, pair[1])))
		})
	}
}

// gcPerPair is how many collections one side of a GC pair times: tens of
// milliseconds, a fraction of what making the data takes.
const gcPerPair = 100

// pairName is the sub-benchmark name of a pair: op= measured against vs=.
func pairName(workload, op, ref string) string {
	return "workload=" + workload + "/op=" + op + "/vs=" + ref
}

// pairUp is the body of every pair of BenchmarkPaired: it runs op and ref
// once each untimed, to warm up, then b.N pairs of them, and reports the
// quartiles of op's time over ref's. op and ref time themselves, so that
// each leaves out its own setup.
func pairUp(b *testing.B, op, ref func() time.Duration) {
	sides := [2]func() time.Duration{op, ref}
	for _, side := range sides {
		side()
	}
	ratios := make([]float64, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		var d [2]time.Duration
		first := i % 2
		d[first] = sides[first]()
		d[1-first] = sides[1-first]()
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
}

// timedParallel returns one side of a parallel pair: it runs batch ops on
// each of GOMAXPROCS workers of setup, one goroutine each, and returns the
// time from the first worker's start to the last one's finish. The
// workers wait for each other before they start, so that the time does
// not count how long the runtime took to wake an idle P for one of them.
func timedParallel(b *testing.B, setup func() roundTrip, size, chunk, batch int) func() time.Duration {
	workers := make([]*worker, runtime.GOMAXPROCS(0))
	for i := range workers {
		workers[i] = newWorker(setup, size)
	}
	starts, ends := make([]time.Time, len(workers)), make([]time.Time, len(workers))
	return func() time.Duration {
		var ready atomic.Int32
		var wg sync.WaitGroup
		for i, wk := range workers {
			wg.Go(func() {
				for ready.Add(1); ready.Load() < int32(len(workers)); {
					runtime.Gosched()
				}
				starts[i] = time.Now()
				for range batch {
					if err := wk.op(wk.src, wk.dst, chunk); err != nil {
						b.Error(err)
						break
					}
				}
				ends[i] = time.Now()
			})
		}
		wg.Wait()
		first := slices.MinFunc(starts, time.Time.Compare)
		last := slices.MaxFunc(ends, time.Time.Compare)
		return last.Sub(first)
	}
}

// newPairedSetup returns the setup of the named buffer peer, or of the
// bound, the fenced or the unsynced bound (see setupBound, setupFenced and
// setupUnsynced): the state its goroutines share, from which each makes
// its own roundTrip. The unsynced bound's goroutine must be the only one.
func newPairedSetup(tb testing.TB, name string, size int) func() roundTrip {
	switch name {
	case "bound":
		return setupBound(size)
	case "fenced":
		return setupFenced(size)
	case "unsynced":
		return setupUnsynced(size)
	}
	return named(tb, bufferPeers, func(p bufferPeer) string { return p.name }, name).setup(size)
}

// newPairedPipe returns an op of the named pipe peer, or of the spsc
// reference (see setupPipeSPSC).
func newPairedPipe(tb testing.TB, name string) pipeRun {
	if name == "spsc" {
		return setupPipeSPSC()
	}
	return named(tb, pipePeers, func(p pipePeer) string { return p.name }, name).setup()
}

// gcPeerNamed returns the named GC peer.
func gcPeerNamed(tb testing.TB, name string) gcPeer {
	return named(tb, gcPeers, func(p gcPeer) string { return p.name }, name)
}

// named returns the peer of peers called name, failing tb if there is none.
func named[P any](tb testing.TB, peers []P, nameOf func(P) string, name string) P {
	i := slices.IndexFunc(peers, func(p P) bool { return nameOf(p) == name })
	if i < 0 {
		tb.Fatalf("no peer %q", name)
	}
	return peers[i]
}
