// Ratios reads the output of several rounds of
//
//	go test -run '^$' -bench . -benchmem -count=1
//
// (concatenated, as bench/run.sh writes it) and prints, for every workload,
// the median over rounds of the per-round ratios of bytespool's ns/op to
// the floor's and to the best other peer's, then checks each workload's
// target from the bench issue and prints PASS or MISS.
//
// Usage:
//
//	ratios [file ...]
//
// With no file it reads standard input. Benchmarks are named
// Benchmark<Workload>/peer=<name>; the n-th result of a benchmark belongs
// to round n, so a round's ratios only compare results measured seconds
// apart.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/zjj/bytespool/bench/internal/benchout"
)

// A result is one benchmark line: its metrics by unit.
type result = benchout.Result

// results holds every round's results, by workload, then by peer, in
// round order.
type results = benchout.Results

// skipped are workloads with peer= results that the tables leave out:
// GCGoal's figures are counts (gc-cycles, heap-goal-MiB) and its
// allocations are the garbage it makes on purpose.
var skipped = []string{"GCGoal"}

// parse reads go test -bench output (see benchout.Parse), leaving out the
// skipped workloads.
func parse(r io.Reader, res results) error {
	if err := benchout.Parse(r, res); err != nil {
		return err
	}
	dropSkipped(res)
	return nil
}

// dropSkipped removes the skipped workloads from res.
func dropSkipped(res results) {
	for _, w := range skipped {
		delete(res, w)
	}
}

// splitName is benchout.SplitName.
func splitName(name string) (workload, peer string, ok bool) { return benchout.SplitName(name) }

// isContender reports whether peer competes with bytespool: floor and none
// are bounds, and the bytespool variants are bytespool itself.
func isContender(peer string) bool {
	return peer != "floor" && peer != "none" && !strings.HasPrefix(peer, "bytespool")
}

// ratios returns, round by round, bytespool's unit divided by that of
// the peer that pick chooses among the round's results. A round missing
// either side is skipped.
func ratios(peers map[string][]result, unit string, pick func(round int) (result, bool)) []float64 {
	var out []float64
	for i, bp := range peers["bytespool"] {
		ref, ok := pick(i)
		if !ok || ref[unit] == 0 {
			continue
		}
		if v, ok := bp[unit]; ok {
			out = append(out, v/ref[unit])
		}
	}
	return out
}

// peerRound picks the named peer's result of a round.
func peerRound(peers map[string][]result, name string) func(int) (result, bool) {
	return func(i int) (result, bool) {
		if i < len(peers[name]) {
			return peers[name][i], true
		}
		return nil, false
	}
}

// bestRound picks, in each round, the contender with the lowest unit.
func bestRound(peers map[string][]result, unit string, winners map[string]int) func(int) (result, bool) {
	return func(i int) (result, bool) {
		var best result
		bestName := ""
		for name, rs := range peers {
			if !isContender(name) || i >= len(rs) {
				continue
			}
			if v, ok := rs[i][unit]; ok && (best == nil || v < best[unit]) {
				best, bestName = rs[i], name
			}
		}
		if best != nil {
			winners[bestName]++
		}
		return best, best != nil
	}
}

// A target is one speed target of the bench issue: the median ratio of
// bytespool's ns/op to the reference's must be at most max.
type target struct {
	workload string
	// ref is "floor", a peer's name, or "p50" for the ratio of
	// bytespool's own p99.9-ns to its p50-ns.
	ref string
	max float64
}

var targets = []target{
	{"Stream2MiB", "floor", 1.04},
	{"Stream2MiBParallel", "floor", 1.06},
	{"Small1KiB", "syncpool-buffer", 1.9},
	{"Small1KiBParallel", "syncpool-buffer", 1.9},
	{"Pipe64MiB", "floor", 2.0},
	{"BlockGetPut", "syncpool", 1.00},
	{"BlockGetPutParallel", "semaphore-syncpool", 0.50},
	{"Latency", "p50", 5},
	// "No slower than with nothing held, within noise": 10% is the noise
	// allowance.
	{"GC", "none", 1.10},
}

func (t target) String() string {
	if t.ref == "p50" {
		return fmt.Sprintf("p99.9 ≤ %g× p50", t.max)
	}
	return fmt.Sprintf("≤ %.2f× %s", t.max, t.ref)
}

// measure returns the median over rounds of the ratio that t bounds.
func (t target) measure(peers map[string][]result) float64 {
	if t.ref == "p50" {
		var rs []float64
		for _, r := range peers["bytespool"] {
			if r["p50-ns"] > 0 {
				rs = append(rs, r["p99.9-ns"]/r["p50-ns"])
			}
		}
		return benchout.Median(rs)
	}
	return benchout.Median(ratios(peers, "ns/op", peerRound(peers, t.ref)))
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// fmtRatio formats a ratio, or "n/a" when there was nothing to compare.
func fmtRatio(r float64) string {
	if math.IsNaN(r) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", r)
}

// report writes the ratio table and the allocation table.
func report(w io.Writer, res results) {
	rounds := 0
	for _, peers := range res {
		for _, rs := range peers {
			rounds = max(rounds, len(rs))
		}
	}
	fmt.Fprintf(w, "bytespool ns/op as a ratio, median over %d rounds of per-round ratios\n\n", rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tvs floor\tvs best peer\tbest peer\ttarget\tmeasured\tresult")
	var names []string
	for _, t := range targets {
		names = append(names, t.workload)
	}
	var extra []string
	for name := range res {
		if !slices.Contains(names, name) {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	names = append(names, extra...)
	for _, name := range names {
		peers := res[name]
		if peers == nil {
			continue
		}
		vsFloor := benchout.Median(ratios(peers, "ns/op", peerRound(peers, "floor")))
		winners := make(map[string]int)
		vsBest := benchout.Median(ratios(peers, "ns/op", bestRound(peers, "ns/op", winners)))
		best := "-"
		for p, n := range winners {
			if best == "-" || n > winners[best] || (n == winners[best] && p < best) {
				best = p
			}
		}
		tgt, measured, result := "-", "-", "-"
		if i := slices.IndexFunc(targets, func(t target) bool { return t.workload == name }); i >= 0 {
			t := targets[i]
			m := t.measure(peers)
			tgt, measured = t.String(), fmtRatio(m)
			if !math.IsNaN(m) {
				result = verdict(m <= t.max)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, fmtRatio(vsFloor), fmtRatio(vsBest), best, tgt, measured, result)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nbytespool allocs/op, median over rounds (target: 0; Pipe64MiB: at most io-pipe's; Relay: no target, against splice's)\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tallocs/op\tlimit\tresult")
	for _, name := range names {
		peers := res[name]
		var bps []string
		for p := range peers {
			if strings.HasPrefix(p, "bytespool") {
				bps = append(bps, p)
			}
		}
		slices.Sort(bps)
		for _, p := range bps {
			allocs := benchout.Median(benchout.Column(peers[p], "allocs/op"))
			limit := 0.0
			switch name {
			case "Pipe64MiB":
				limit = benchout.Median(benchout.Column(peers["io-pipe"], "allocs/op"))
			case "Relay":
				// An op dials 16 TCP connections, each relayed by
				// goroutines of its own: what any relay allocates
				// per connection, which the 0 is not about. No
				// verdict; the relay that allocates least per op
				// is shown beside it.
				limit = benchout.Median(benchout.Column(peers["splice"], "allocs/op"))
			}
			result := "-"
			if name != "Relay" && !math.IsNaN(allocs) && !math.IsNaN(limit) {
				result = verdict(allocs <= limit)
			}
			fmt.Fprintf(tw, "%s/peer=%s\t%g\t%g\t%s\n", name, p, allocs, limit, result)
		}
	}
	tw.Flush()
}

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: ratios [file ...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	res := make(results)
	if err := benchout.ParseFiles(flag.Args(), res); err != nil {
		fmt.Fprintln(os.Stderr, "ratios:", err)
		os.Exit(1)
	}
	dropSkipped(res)
	if len(res) == 0 {
		fmt.Fprintln(os.Stderr, "ratios: no Benchmark<Workload>/peer=<name> results in the input")
		os.Exit(1)
	}
	report(os.Stdout, res)
}
