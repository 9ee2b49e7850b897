package bench

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zjj/bytespool"
)

// trimHeld is what the pool of TestTrimRSS and BenchmarkTrim holds, all in
// one Bytes, before it frees it and trims.
const trimHeld = 256 << 20

// vmRSS returns the process's resident memory in bytes (VmRSS in
// /proc/self/status), and false where there is no such file (not Linux).
func vmRSS(tb testing.TB) (int, bool) {
	if runtime.GOOS != "linux" {
		return 0, false
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, value, ok := strings.Cut(s.Text(), ":")
		if !ok || name != "VmRSS" {
			continue
		}
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), " kB"))
		if err != nil {
			tb.Fatalf("VmRSS: %q: %v", value, err)
		}
		return kb << 10, true
	}
	return 0, false
}

// newTrimPool returns a pool capped at trimHeld, or skips tb where Trim
// cannot give memory back: where the arena is Go heap (under -race, or
// off unix) or where there is no VmRSS to read.
func newTrimPool(tb testing.TB) *bytespool.BytesPool {
	if _, ok := vmRSS(tb); !ok {
		tb.Skip("no VmRSS in /proc/self/status (Linux only)")
	}
	p := bytespool.NewBytesPool(trimHeld, blockSize)
	if p.Stats().ArenaInHeap {
		tb.Skip("the arena is Go heap here: Trim gives nothing back")
	}
	return p
}

// fillAndFree writes trimHeld bytes into one Bytes of p in 1 MiB writes,
// then frees it: every block of the pool was used and is free again.
func fillAndFree(tb testing.TB, p *bytespool.BytesPool, src []byte) {
	buf := p.NewBytes(0)
	for range trimHeld / len(src) {
		if _, err := buf.Write(src); err != nil {
			tb.Fatal(err)
		}
	}
	buf.Free()
}

// trimOnce fills p and frees it (fillAndFree), then trims it, and returns
// the resident memory just before and just after Trim, what Trim reported
// and how long it took.
func trimOnce(tb testing.TB, p *bytespool.BytesPool, src []byte) (before, after, released int, took time.Duration) {
	fillAndFree(tb, p, src)
	before, _ = vmRSS(tb)
	start := time.Now()
	released = p.Trim()
	took = time.Since(start)
	after, _ = vmRSS(tb)
	return before, after, released, took
}

// TestTrimRSS: a pool that held 256 MiB, all freed, gives back at least
// 90% of it to the system when trimmed, as VmRSS shows (Linux, mapped
// arena only). It logs the figures (go test -v -run TestTrimRSS).
func TestTrimRSS(t *testing.T) {
	p := newTrimPool(t)
	before, after, released, took := trimOnce(t, p, payload(1<<20, 0))
	t.Logf("VmRSS %d MiB before Trim, %d MiB after: %.1f%% of the %d MiB freed; Trim reported %d MiB in %v",
		before>>20, after>>20, 100*float64(before-after)/trimHeld, trimHeld>>20, released>>20, took)
	if before-after < trimHeld/10*9 {
		t.Errorf("VmRSS fell by %d MiB, want at least 90%% of %d MiB", (before-after)>>20, trimHeld>>20)
	}
	runtime.KeepAlive(p)
}

// BenchmarkTrim: one op fills a pool capped at 256 MiB (one Bytes, 1 MiB
// writes), frees it and trims it. ns/op is the whole op, mostly the
// writes and their page faults; trim-ns is Trim's own time, and
// rss-drop-% how much of the 256 MiB freed VmRSS lost across Trim (the
// target is at least 90). Linux with a mapped arena only.
func BenchmarkTrim(b *testing.B) {
	p := newTrimPool(b)
	src := payload(1<<20, 0)
	var drop int
	var trim time.Duration
	b.ResetTimer()
	for range b.N {
		before, after, _, took := trimOnce(b, p, src)
		drop += before - after
		trim += took
	}
	b.StopTimer()
	b.ReportMetric(float64(trim.Nanoseconds())/float64(b.N), "trim-ns")
	b.ReportMetric(100*float64(drop)/float64(b.N)/trimHeld, "rss-drop-%")
}

// BenchmarkFirstTouch pairs Stream2MiB ops (see BenchmarkPaired's pairUp:
// ratio-p25/p50/p75 of op= over vs=) on pools whose memory is not resident
// against the same op on a warm pool and against the floor:
//   - trimmed: a 100 MiB pool, warmed once, trimmed (untimed) before every
//     op, so each op's blocks come back from Trim and fault their pages
//     in again: the reuse of a pool after Trim;
//   - fresh: a new 100 MiB pool (untimed) for every op, so each op also
//     publishes the slabs it reaches and faults their pages in for the
//     first time: what a Config.Prefault would save the first user;
//   - bytespool: the warm pool of BenchmarkStream2MiB;
//   - floor-cold: the floor through a buffer whose pages are given back
//     before every op (Linux only, see newColdFloor): the least an op on
//     memory that is not resident can cost.
//
// Stream2MiB's target, bytespool/floor <= 1.05, is the yardstick, and
// trimmed/floor-cold says how much of the gap the page faults alone
// explain. Without
// a mapped arena (race builds, non-unix) Trim does nothing and trimmed is
// the warm pool.
func BenchmarkFirstTouch(b *testing.B) {
	const size, chunk = 2 << 20, 32 << 10
	for _, pair := range [][2]string{
		{"trimmed", "floor"},
		{"bytespool", "floor"},
		{"trimmed", "bytespool"},
		{"fresh", "floor"},
		{"fresh", "bytespool"},
		{"floor-cold", "floor"},
		{"trimmed", "floor-cold"},
	} {
		b.Run(pairName("Stream2MiB", pair[0], pair[1]), func(b *testing.B) {
			src, dst := payload(size, 0), make([]byte, size)
			timed := func(name string) func() time.Duration {
				var before func() roundTrip // untimed, returns the op to time
				switch name {
				case "trimmed":
					p := bytespool.NewBytesPool(poolMemory, blockSize)
					op := bytespoolOp(p)
					before = func() roundTrip { p.Trim(); return op }
				case "fresh":
					made := 0
					before = func() roundTrip {
						// A dropped pool's arena is unmapped by a
						// cleanup, after a collection finds it.
						if made++; made%64 == 0 {
							runtime.GC()
						}
						return bytespoolOp(bytespool.NewBytesPool(poolMemory, blockSize))
					}
				case "floor-cold":
					before = newColdFloor(b, size)
				default:
					op := newPairedSetup(b, name, size)()
					before = func() roundTrip { return op }
				}
				return func() time.Duration {
					op := before()
					start := time.Now()
					if err := op(src, dst, chunk); err != nil {
						b.Fatal(err)
					}
					return time.Since(start)
				}
			}
			pairUp(b, timed(pair[0]), timed(pair[1]))
		})
	}
}
