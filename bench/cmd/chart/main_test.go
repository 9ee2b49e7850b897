package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// Two rounds, as run.sh concatenates them: a workload with a floor, one
// without (its reference is the fastest peer), GCCPU (charted by
// gc-cpu-ns/cycle), GCGoal (left out) and a benchmark without peer=.
const twoRounds = `goos: linux
cpu: Intel(R) Xeon(R) Processor
BenchmarkStream2MiB/peer=bytespool-2         	    1000	    110 ns/op	1000.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkStream2MiB/peer=kafka-2             	    1000	    300 ns/op	 500.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkStream2MiB/peer=floor-2             	    1000	    100 ns/op	2000.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkBlockGetPut/peer=bytespool-2        	    1000	     30 ns/op
BenchmarkBlockGetPut/peer=syncpool-2         	    1000	     10 ns/op
BenchmarkBlockGetPut/peer=channel-2          	    1000	     20 ns/op
BenchmarkGCCPU/peer=bytespool-2              	      10	    999 ns/op	    120 gc-cpu-ns/cycle
BenchmarkGCCPU/peer=floor-2                  	      10	      1 ns/op	    100 gc-cpu-ns/cycle
BenchmarkGCGoal/peer=bytespool-2             	       1	    100 ns/op	      0 gc-cycles	   2063 heap-goal-MiB
BenchmarkPaired/workload=Small1KiB/op=bytespool/vs=kafka-2	20	10627 ns/op	1.483 ratio-p25	1.497 ratio-p50	1.528 ratio-p75
PASS
goos: linux
BenchmarkStream2MiB/peer=bytespool-2         	    1000	    240 ns/op	1000.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkStream2MiB/peer=kafka-2             	    1000	    800 ns/op	 500.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkStream2MiB/peer=floor-2             	    1000	    200 ns/op	2000.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkBlockGetPut/peer=bytespool-2        	    1000	     50 ns/op
BenchmarkBlockGetPut/peer=syncpool-2         	    1000	     10 ns/op
BenchmarkBlockGetPut/peer=channel-2          	    1000	     30 ns/op
BenchmarkGCCPU/peer=bytespool-2              	      10	    999 ns/op	    150 gc-cpu-ns/cycle
BenchmarkGCCPU/peer=floor-2                  	      10	      1 ns/op	    100 gc-cpu-ns/cycle
`

func TestParse(t *testing.T) {
	res := make(results)
	if err := parse(strings.NewReader(twoRounds), res); err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("parsed workloads %v, want Stream2MiB, BlockGetPut, GCCPU and GCGoal", res)
	}
	bp := res["Stream2MiB"]["bytespool"]
	if len(bp) != 2 || bp[0]["ns/op"] != 110 || bp[1]["ns/op"] != 240 {
		t.Errorf("Stream2MiB bytespool = %v, want two rounds: 110 then 240 ns/op", bp)
	}
	if got := res["GCCPU"]["bytespool"][1]["gc-cpu-ns/cycle"]; got != 150 {
		t.Errorf("GCCPU bytespool round 2 gc-cpu-ns/cycle = %v, want 150", got)
	}
	if err := parse(strings.NewReader("BenchmarkX/peer=a-2 1 12x ns/op\n"), res); err == nil {
		t.Error("a bad value parsed without an error")
	}
}

func TestGroups(t *testing.T) {
	res := make(results)
	if err := parse(strings.NewReader(twoRounds), res); err != nil {
		t.Fatal(err)
	}
	gs := groups(res)
	type want struct {
		workload, ref string
		bars          []bar
	}
	wants := []want{
		// Per-round ratios 1.1 and 1.2, 3 and 4: the medians are their means.
		{"Stream2MiB", "floor", []bar{{"bytespool", 1.15}, {"floor", 1}, {"kafka", 3.5}}},
		// No floor: the fastest peer, syncpool, is the reference.
		{"BlockGetPut", "syncpool", []bar{{"bytespool", 4}, {"syncpool", 1}, {"channel", 2.5}}},
		// By gc-cpu-ns/cycle, not ns/op.
		{"GCCPU", "floor", []bar{{"bytespool", 1.35}, {"floor", 1}}},
	}
	if len(gs) != len(wants) {
		t.Fatalf("got %d groups %v, want %d (GCGoal left out)", len(gs), gs, len(wants))
	}
	for i, w := range wants {
		g := gs[i]
		if g.workload != w.workload || g.ref != w.ref || len(g.bars) != len(w.bars) {
			t.Errorf("group %d = %s vs %s with %v; want %s vs %s with %v", i, g.workload, g.ref, g.bars, w.workload, w.ref, w.bars)
			continue
		}
		for j, b := range w.bars {
			if g.bars[j].peer != b.peer || math.Abs(g.bars[j].ratio-b.ratio) > 1e-9 {
				t.Errorf("%s bar %d = %v, want %v", g.workload, j, g.bars[j], b)
			}
		}
	}
}

func TestRender(t *testing.T) {
	res := make(results)
	if err := parse(strings.NewReader(twoRounds), res); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := render(&buf, groups(res), roundsIn(res)); err != nil {
		t.Fatal(err)
	}
	svg := buf.String()
	for _, s := range []string{"<svg", "Stream2MiB, vs floor:", "BlockGetPut, vs syncpool:", "kafka", "3.50×", "2 rounds"} {
		if !strings.Contains(svg, s) {
			t.Errorf("the SVG has no %q", s)
		}
	}
	if err := render(&buf, nil, 0); err == nil {
		t.Error("render of no groups: no error")
	}
}
