package main

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/zjj/bytespool/bench/internal/benchout"
)

// Two rounds, as run.sh concatenates them.
const twoRounds = `goos: linux
goarch: amd64
pkg: github.com/zjj/bytespool/bench
cpu: Intel(R) Xeon(R) Processor
BenchmarkStream2MiB/peer=bytespool-2         	    1000	    110 ns/op	1000.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkStream2MiB/peer=bytes-buffer-2      	    1000	    300 ns/op	 500.00 MB/s	     100 B/op	       8 allocs/op
BenchmarkStream2MiB/peer=syncpool-buffer-2   	    1000	    200 ns/op	 500.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkStream2MiB/peer=floor-2             	    1000	    100 ns/op	2000.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkLatency/peer=bytespool-2            	    1000	    100 ns/op	    50 p50-ns	   200 p99-ns	   400 p99.9-ns	       0 B/op	       0 allocs/op
BenchmarkPipe64MiB/peer=bytespool-2          	      10	    120 ns/op	       0 B/op	       3 allocs/op
BenchmarkPipe64MiB/peer=io-pipe-2            	      10	    400 ns/op	       0 B/op	       4 allocs/op
BenchmarkPipe64MiB/peer=floor-2              	      10	    100 ns/op	       0 B/op	       0 allocs/op
PASS
ok  	github.com/zjj/bytespool/bench	10.0s
goos: linux
BenchmarkStream2MiB/peer=bytespool-2         	    1000	    120 ns/op	1000.00 MB/s	       0 B/op	       1 allocs/op
BenchmarkStream2MiB/peer=bytes-buffer-2      	    1000	    150 ns/op	 500.00 MB/s	     100 B/op	       8 allocs/op
BenchmarkStream2MiB/peer=syncpool-buffer-2   	    1000	    400 ns/op	 500.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkStream2MiB/peer=floor-2             	    1000	    100 ns/op	2000.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkLatency/peer=bytespool-2            	    1000	    100 ns/op	    50 p50-ns	   200 p99-ns	   200 p99.9-ns	       0 B/op	       0 allocs/op
BenchmarkNoPeer-2                            	    1000	    100 ns/op
BenchmarkGCGoal/peer=bytespool-2             	       2	    100 ns/op	     0 gc-cycles	  2063 heap-goal-MiB	       0 B/op	   97657 allocs/op
`

func TestParse(t *testing.T) {
	res := make(results)
	if err := parse(strings.NewReader(twoRounds), res); err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("parsed workloads %v, want Stream2MiB, Latency and Pipe64MiB", res)
	}
	bp := res["Stream2MiB"]["bytespool"]
	if len(bp) != 2 || bp[0]["ns/op"] != 110 || bp[1]["ns/op"] != 120 || bp[1]["allocs/op"] != 1 {
		t.Errorf("Stream2MiB bytespool = %v, want two rounds: 110 then 120 ns/op", bp)
	}
	if got := res["Latency"]["bytespool"][0]["p99.9-ns"]; got != 400 {
		t.Errorf("Latency p99.9-ns = %v, want 400", got)
	}
}

func TestSplitName(t *testing.T) {
	for _, tc := range []struct{ in, workload, peer string }{
		{"BenchmarkStream2MiB/peer=floor-2", "Stream2MiB", "floor"},
		{"BenchmarkBlockGetPut/peer=semaphore-syncpool-16", "BlockGetPut", "semaphore-syncpool"},
		{"BenchmarkGC/peer=none", "GC", "none"},
	} {
		w, p, ok := splitName(tc.in)
		if !ok || w != tc.workload || p != tc.peer {
			t.Errorf("splitName(%q) = %q, %q, %v; want %q, %q, true", tc.in, w, p, ok, tc.workload, tc.peer)
		}
	}
	if _, _, ok := splitName("BenchmarkNoPeer-2"); ok {
		t.Error("splitName accepted a name without peer=")
	}
}

func TestRatios(t *testing.T) {
	res := make(results)
	if err := parse(strings.NewReader(twoRounds), res); err != nil {
		t.Fatal(err)
	}
	peers := res["Stream2MiB"]
	// Per round: 110/100 and 120/100.
	if got := benchout.Median(ratios(peers, "ns/op", peerRound(peers, "floor"))); math.Abs(got-1.15) > 1e-9 {
		t.Errorf("vs floor = %v, want 1.15", got)
	}
	// The best peer differs by round: 110/200, then 120/150.
	winners := make(map[string]int)
	if got := benchout.Median(ratios(peers, "ns/op", bestRound(peers, "ns/op", winners))); math.Abs(got-(0.55+0.8)/2) > 1e-9 {
		t.Errorf("vs best = %v, want 0.675", got)
	}
	if winners["syncpool-buffer"] != 1 || winners["bytes-buffer"] != 1 {
		t.Errorf("winners = %v, want one round each", winners)
	}
}

func TestReport(t *testing.T) {
	res := make(results)
	if err := parse(strings.NewReader(twoRounds), res); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	report(&out, res)
	rows := make(map[string][]string)
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	for _, tc := range []struct {
		row  string
		want []string
	}{
		// 110/100 and 120/100 against floor; the best peer differs by round.
		{"Stream2MiB", []string{"1.15×", "0.68×", "bytes-buffer", "≤", "1.04×", "floor", "1.15×", "MISS"}},
		{"Pipe64MiB", []string{"1.20×", "0.30×", "io-pipe", "≤", "2.00×", "floor", "1.20×", "PASS"}},
		// p99.9/p50 is 8 then 4.
		{"Latency", []string{"n/a", "n/a", "-", "p99.9", "≤", "5×", "p50", "6.00×", "MISS"}},
		// allocs/op is 0 then 1.
		{"Stream2MiB/peer=bytespool", []string{"0.5", "0", "MISS"}},
		{"Pipe64MiB/peer=bytespool", []string{"3", "4", "PASS"}},
	} {
		if got := rows[tc.row]; len(got) == 0 || !slices.Equal(got[1:], tc.want) {
			t.Errorf("row %s = %q, want %q", tc.row, got, tc.want)
		}
	}
	if !strings.Contains(out.String(), "median over 2 rounds") {
		t.Errorf("report does not say how many rounds:\n%s", out.String())
	}
	if t.Failed() {
		t.Logf("report:\n%s", out.String())
	}
}
