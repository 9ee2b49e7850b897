package bench

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"testing"
)

// gcHeld is how much data BenchmarkGC holds while it collects.
const gcHeld = 256 << 20

// A gcPeer is one way to hold gcHeld bytes during BenchmarkGC.
type gcPeer struct {
	name string
	// hold makes the data and returns a function that releases it;
	// the data stays reachable until then.
	hold func(b *testing.B) (release func())
}

// gcPeers are the contenders of BenchmarkGC. bytespool puts itself first
// (gc_bytespool_test.go).
var gcPeers = []gcPeer{
	{"syncpool-blocks", holdSyncPoolBlocks},
	{"addcleanup", holdCleanups},
	{"floor", holdFloor},
	{"none", func(*testing.B) func() { return func() {} }},
}

// BenchmarkGC times one forced garbage collection (runtime.GC, which also
// finishes sweeping) while 256 MiB are held: in pool blocks (bytespool), in
// 4 KiB blocks from a sync.Pool, in one big slice (floor), or not at all
// (none). addcleanup holds no data, only what the reclaim contract of
// SPEC.md costs any design that holds the data in 256 Bytes: 256 small
// headers, each with a runtime.AddCleanup.
func BenchmarkGC(b *testing.B) {
	for _, peer := range gcPeers {
		// The data is made once per peer, not once per b.N round, and
		// released before the next peer makes its own.
		var release func()
		b.Run("peer="+peer.name, func(b *testing.B) {
			if release == nil {
				release = peer.hold(b)
			}
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				runtime.GC()
			}
		})
		if release != nil {
			release()
		}
		runtime.GC()
	}
}

// holdSyncPoolBlocks holds the data as 4 KiB blocks got from a sync.Pool,
// each its own heap object.
func holdSyncPoolBlocks(*testing.B) func() {
	blocks := newBlockPool()
	held := make([]*[]byte, gcHeld/blockSize)
	for i := range held {
		held[i] = blocks.Get().(*[]byte)
		(*held[i])[0] = byte(i)
	}
	return func() {
		for _, p := range held {
			blocks.Put(p)
		}
		clear(held)
	}
}

// holdCleanups holds gcHeld/1 MiB headers, as many as bytespool's Bytes,
// each pointing to a body of a Bytes' size and carrying a runtime.AddCleanup
// that would reclaim the body, as each Bytes header does.
func holdCleanups(*testing.B) func() {
	type body struct {
		ptrs  [2]*int // a Bytes' body holds two pointers
		words [12]uint64
	}
	type header struct{ b *body }
	held := make([]*header, gcHeld/(1<<20))
	for i := range held {
		b := new(body)
		held[i] = &header{b}
		runtime.AddCleanup(held[i], func(b *body) { b.ptrs[0], b.words[0] = nil, 0 }, b)
	}
	return func() { clear(held) }
}

// holdFloor holds the data in one pointer-free slice, which the collector
// marks without scanning: the least any holder can cost it.
func holdFloor(*testing.B) func() {
	held := make([]byte, gcHeld)
	for i := 0; i < len(held); i += blockSize {
		held[i] = byte(i) // fault the pages in, as the other peers do
	}
	return func() { runtime.KeepAlive(held) }
}

// gcCPUStats reads the collector's CPU time so far, all of it and that of
// its pauses, in seconds, and the number of cycles it has completed. The
// runtime adds a cycle's CPU time to these counters at the cycle's mark
// termination, so after runtime.GC returns they include it.
func gcCPUStats() (total, pause float64, cycles uint64) {
	s := []metrics.Sample{
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/gc/pause:cpu-seconds"},
		{Name: "/gc/cycles/total:gc-cycles"},
	}
	metrics.Read(s)
	return s[0].Value.Float64(), s[1].Value.Float64(), s[2].Value.Uint64()
}

// BenchmarkGCCPU measures the CPU work of a garbage collection while the
// gcPeers hold their data, as BenchmarkGC does, but from the runtime's own
// account rather than the wall clock: the growth of
// /cpu/classes/gc/total:cpu-seconds over b.N forced cycles, divided by the
// cycles /gc/cycles/total counted, reported as gc-cpu-ns/cycle (and the
// part spent in the two stop-the-world pauses as gc-pause-cpu-ns/cycle).
// The runtime counts a pause as GOMAXPROCS times its length, and mark work
// by the wall clock of the workers, so the figures are estimates that a
// busy machine inflates; compare them between peers of one run, not with
// other measures of CPU time. Sweeping is not in them (it is counted as
// the program's own time), and neither are the cleanups that run.
//
// The data is made once per peer, as in BenchmarkGC.
func BenchmarkGCCPU(b *testing.B) {
	for _, peer := range gcPeers {
		var release func()
		b.Run("peer="+peer.name, func(b *testing.B) {
			if release == nil {
				release = peer.hold(b)
			}
			runtime.GC()
			b.ReportAllocs()
			total0, pause0, cycles0 := gcCPUStats()
			b.ResetTimer()
			for range b.N {
				runtime.GC()
			}
			b.StopTimer()
			total1, pause1, cycles1 := gcCPUStats()
			n := float64(cycles1 - cycles0)
			b.ReportMetric((total1-total0)*1e9/n, "gc-cpu-ns/cycle")
			b.ReportMetric((pause1-pause0)*1e9/n, "gc-pause-cpu-ns/cycle")
		})
		if release != nil {
			release()
			release = nil // the closure b.Run keeps refers to it
		}
		settleHeap()
	}
}

// The garbage loop of BenchmarkGCGoal.
const (
	gcGoalGarbage = 800_000_000 // bytes of garbage per op
	gcGoalChunk   = 8 << 10     // bytes per object
)

// gcGoalSink keeps each object of the garbage loop on the heap.
var gcGoalSink []byte

// A gcGoalPeer is one holder of BenchmarkGCGoal.
type gcGoalPeer struct {
	name string
	// hold makes what the peer holds during the loop and returns a
	// function that releases it.
	hold func(tb testing.TB) (release func())
}

// gcGoalPeers are the holders of BenchmarkGCGoal and TestGCGoal. bytespool
// puts itself first (gc_bytespool_test.go).
var gcGoalPeers = []gcGoalPeer{
	{"none", func(testing.TB) func() { return func() {} }},
}

// makeGarbage allocates gcGoalGarbage bytes of short-lived gcGoalChunk-byte
// objects and returns the collections that completed meanwhile, the heap
// goal (/gc/heap/goal:bytes, MemStats.NextGC) at the end, and the median
// of the goal sampled every gcGoalEvery objects along the way: the goal
// at the end is one sample, which a collection that has just ended, or a
// goroutine of the runtime allocating at the time, can move tenfold.
func makeGarbage() (cycles, goal, goalP50 uint64) {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	cycles0 := s[0].Value.Uint64()
	goals := make([]uint64, 0, gcGoalGarbage/gcGoalChunk/gcGoalEvery+1)
	for i := range gcGoalGarbage / gcGoalChunk {
		gcGoalSink = make([]byte, gcGoalChunk)
		if i%gcGoalEvery == 0 {
			metrics.Read(s[1:])
			goals = append(goals, s[1].Value.Uint64())
		}
	}
	gcGoalSink = nil
	metrics.Read(s)
	slices.Sort(goals)
	return s[0].Value.Uint64() - cycles0, s[1].Value.Uint64(), goals[len(goals)/2]
}

// gcGoalEvery is how many objects makeGarbage allocates between two
// samples of the heap goal: 48 samples per loop.
const gcGoalEvery = 2048

// settleHeap collects twice, so that what sync.Pools and earlier
// benchmarks dropped is gone and the heap goal reflects what is held now.
func settleHeap() {
	runtime.GC()
	runtime.GC()
}

// BenchmarkGCGoal: one op allocates 800 MB of short-lived 8 KiB garbage
// while a 1 GiB pool holds 1 MiB (bytespool), or while nothing is held
// (none). It reports the collections per op as gc-cycles and the heap
// goal at the end of the last op as heap-goal-MiB, and the median of the
// goal sampled along the last op as heap-goal-p50-MiB, which one late
// sample cannot move. A pool whose arena is Go
// heap memory raises the goal by the arena's size, so the collector runs
// far less often than with nothing held: SPEC 14 asks for an arena outside
// the heap, after which the two should match.
func BenchmarkGCGoal(b *testing.B) {
	for _, peer := range gcGoalPeers {
		var release func()
		b.Run("peer="+peer.name, func(b *testing.B) {
			if release == nil {
				release = peer.hold(b)
			}
			settleHeap()
			b.SetBytes(gcGoalGarbage)
			b.ResetTimer()
			var cycles, goal, goalP50 uint64
			for range b.N {
				var c uint64
				c, goal, goalP50 = makeGarbage()
				cycles += c
			}
			b.StopTimer()
			b.ReportMetric(float64(cycles)/float64(b.N), "gc-cycles")
			b.ReportMetric(float64(goal)/(1<<20), "heap-goal-MiB")
			b.ReportMetric(float64(goalP50)/(1<<20), "heap-goal-p50-MiB")
		})
		if release != nil {
			release()
			release = nil // the closure b.Run keeps refers to it
		}
		settleHeap()
		debug.FreeOSMemory()
	}
}

// TestGCGoal runs BenchmarkGCGoal's loop once for each holder and logs the
// collections and the heap goal (go test -v -run GCGoal). It checks
// nothing yet: the figures change when the arena leaves the Go heap.
func TestGCGoal(t *testing.T) {
	for _, peer := range gcGoalPeers {
		release := peer.hold(t)
		settleHeap()
		cycles, goal, goalP50 := makeGarbage()
		release()
		settleHeap()
		t.Logf("peer=%s: %d GC cycles while allocating %d MB of %d-byte garbage, then a heap goal of %d MiB (median along the way %d MiB)",
			peer.name, cycles, gcGoalGarbage/1_000_000, gcGoalChunk, goal>>20, goalP50>>20)
	}
	debug.FreeOSMemory()
}
