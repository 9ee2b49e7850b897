// Chart reads the output of one or more rounds of
//
//	go test -run '^$' -bench . -benchmem -count=1
//
// (concatenated, as bench/run.sh writes it) and draws an SVG chart: for
// every workload, one horizontal bar per peer, bytespool included, giving
// the peer's ns/op as a ratio to the workload's reference, on a log scale.
// The reference is the floor where the workload has one, else the peer
// with the lowest median. Each bar is the median over rounds of the
// per-round ratio, as cmd/ratios takes it, so that a slow minute of the
// machine, which slows the peers of a round alike, cancels out.
//
// GCCPU is charted by its gc-cpu-ns/cycle rather than ns/op. GCGoal is left
// out: its figures are counts (gc-cycles, heap-goal-MiB), read them from
// benchstat.
//
// Usage:
//
//	chart [-o chart.svg] [file ...]
//
// With no file it reads standard input.
package main

import (
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/zjj/bytespool/bench/internal/benchout"
)

// A result is one benchmark line: its metrics by unit.
type result = benchout.Result

// results holds every round's results, by workload, then by peer, in round
// order: the n-th result of a benchmark belongs to round n.
type results = benchout.Results

// parse reads go test -bench output into res (see benchout.Parse).
func parse(r io.Reader, res results) error { return benchout.Parse(r, res) }

// unitOf returns the metric a workload is charted by, or "" to leave the
// workload out.
func unitOf(workload string) string {
	switch workload {
	case "GCCPU":
		return "gc-cpu-ns/cycle"
	case "GCGoal":
		return ""
	}
	return "ns/op"
}

// workloadOrder is the order of the chart's groups, top to bottom; other
// workloads follow in name order.
var workloadOrder = []string{
	"Stream2MiB", "Stream2MiBParallel", "Small1KiB", "Small1KiBParallel",
	"Pipe64MiB", "BlockGetPut", "BlockGetPutParallel", "Latency", "GC", "GCCPU",
}

// A bar is one peer of one workload.
type bar struct {
	peer  string
	ratio float64 // median over rounds of the per-round ratio to the reference
}

// A group is one workload's bars: bytespool first, then the reference,
// then the other peers from fastest to slowest.
type group struct {
	workload, unit, ref string
	rounds              int // rounds in which the reference was measured
	bars                []bar
}

// reference returns the reference peer of a workload: the floor if it has
// one, else the peer with the lowest median of unit.
func reference(peers map[string][]result, unit string) string {
	if len(benchout.Column(peers["floor"], unit)) > 0 {
		return "floor"
	}
	best, bestV := "", math.Inf(1)
	for name, rs := range peers {
		if v := benchout.Median(benchout.Column(rs, unit)); v > 0 && (v < bestV || v == bestV && name < best) {
			best, bestV = name, v
		}
	}
	return best
}

// groups computes the chart's groups from res, in workloadOrder. A peer
// with no round that has both its and the reference's figure is left out.
func groups(res results) []group {
	var names []string
	for name := range res {
		if unitOf(name) != "" {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := slices.Index(workloadOrder, a), slices.Index(workloadOrder, b)
		if ia < 0 {
			ia = len(workloadOrder)
		}
		if ib < 0 {
			ib = len(workloadOrder)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	var out []group
	for _, name := range names {
		peers, unit := res[name], unitOf(name)
		ref := reference(peers, unit)
		if ref == "" {
			continue
		}
		g := group{workload: name, unit: unit, ref: ref, rounds: len(benchout.Column(peers[ref], unit))}
		for peer, rs := range peers {
			var rs2 []float64
			for i, r := range rs {
				if i >= len(peers[ref]) {
					break
				}
				v, ok := r[unit]
				rv := peers[ref][i][unit]
				if ok && v > 0 && rv > 0 {
					rs2 = append(rs2, v/rv)
				}
			}
			if len(rs2) > 0 {
				g.bars = append(g.bars, bar{peer, benchout.Median(rs2)})
			}
		}
		rank := func(b bar) int {
			switch {
			case b.peer == "bytespool":
				return 0
			case strings.HasPrefix(b.peer, "bytespool"):
				return 1
			case b.peer == ref:
				return 2
			}
			return 3
		}
		slices.SortFunc(g.bars, func(a, b bar) int {
			if ra, rb := rank(a), rank(b); ra != rb {
				return ra - rb
			}
			if a.ratio != b.ratio {
				if a.ratio < b.ratio {
					return -1
				}
				return 1
			}
			return strings.Compare(a.peer, b.peer)
		})
		out = append(out, g)
	}
	return out
}

// Colours of the bars.
var (
	colourBytespool = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colourPeer      = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
)

// ratioTicks labels a log10 axis with ratios.
type ratioTicks struct{}

func (ratioTicks) Ticks(min, max float64) []plot.Tick {
	lg2 := math.Log10(2)
	first, last := math.Ceil(min/lg2), math.Floor(max/lg2)
	step := 1.0 // label every power of two, or every other one on a wide axis
	if last-first > 10 {
		step = 2
	}
	var ticks []plot.Tick
	for e := first; e <= last; e++ {
		t := plot.Tick{Value: e * lg2}
		if math.Mod(e, step) == 0 {
			t.Label = ratioLabel(e)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// ratioLabel labels 2**e: "4×", "1×", "1/4×".
func ratioLabel(e float64) string {
	if e < 0 {
		return "1/" + strconv.FormatFloat(math.Pow(2, -e), 'f', 0, 64) + "×"
	}
	return strconv.FormatFloat(math.Pow(2, e), 'f', 0, 64) + "×"
}

// render draws the groups as an SVG onto w. nRounds is the number of
// rounds in the input, for the title.
func render(w io.Writer, gs []group, nRounds int) error {
	rounds := fmt.Sprintf("%d rounds", nRounds)
	if nRounds == 1 {
		rounds = "1 round"
	}
	// Rows from the top: a heading row per workload, then its bars. The
	// Y axis counts from the bottom, so row r is at y = rows-1-r.
	type row struct {
		label string
		bar   *bar
	}
	var rows []row
	for gi := range gs {
		g := &gs[gi]
		head := fmt.Sprintf("%s, vs %s:", g.workload, g.ref)
		if g.unit != "ns/op" {
			head = fmt.Sprintf("%s (%s), vs %s:", g.workload, g.unit, g.ref)
		}
		rows = append(rows, row{label: head})
		for bi := range g.bars {
			rows = append(rows, row{label: g.bars[bi].peer, bar: &g.bars[bi]})
		}
	}
	if len(rows) == 0 {
		return fmt.Errorf("nothing to chart")
	}
	n := len(rows)
	vals := map[color.RGBA]plotter.Values{
		colourBytespool: make(plotter.Values, n),
		colourPeer:      make(plotter.Values, n),
	}
	labels := make([]string, n)
	var text plotter.XYLabels
	lo, hi := 0.0, 0.0
	for r, rw := range rows {
		y := n - 1 - r
		labels[y] = rw.label
		if rw.bar == nil {
			continue
		}
		x := math.Log10(rw.bar.ratio)
		lo, hi = min(lo, x), max(hi, x)
		c := colourPeer
		if strings.HasPrefix(rw.bar.peer, "bytespool") {
			c = colourBytespool
		}
		vals[c][y] = x
		text.XYs = append(text.XYs, plotter.XY{X: max(x, 0), Y: float64(y)})
		text.Labels = append(text.Labels, " "+strconv.FormatFloat(rw.bar.ratio, 'f', 2, 64)+"×")
	}

	p := plot.New()
	p.Title.Text = fmt.Sprintf("bytespool (blue) and its peers (orange): time as a ratio to the workload's reference,\n"+
		"the floor where there is one, else the fastest peer (its own row reads 1.00×);\n"+
		"each bar the median of per-round ratios over %s", rounds)
	p.Title.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.Text = "ratio to the reference (log scale; left of 1× is faster)"
	p.X.Tick.Marker = ratioTicks{}
	p.X.Min, p.X.Max = lo-0.15, hi+0.35 // room for the figures right of the bars
	p.Y.Min, p.Y.Max = -0.7, float64(n)-0.3
	p.NominalY(labels...)
	p.Add(plotter.NewGrid())
	for _, c := range []color.RGBA{colourPeer, colourBytespool} {
		bc, err := plotter.NewBarChart(vals[c], vg.Points(9))
		if err != nil {
			return err
		}
		bc.Horizontal = true
		bc.Color = c
		bc.LineStyle.Width = 0
		p.Add(bc)
	}
	one, err := plotter.NewLine(plotter.XYs{{X: 0, Y: p.Y.Min}, {X: 0, Y: p.Y.Max}})
	if err != nil {
		return err
	}
	one.LineStyle.Width = vg.Points(0.8)
	p.Add(one)
	lb, err := plotter.NewLabels(text)
	if err != nil {
		return err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].Font.Size = vg.Points(7)
		lb.TextStyle[i].YAlign = draw.YCenter
	}
	p.Add(lb)
	p.Y.Tick.Label.Font.Size = vg.Points(8)

	wt, err := p.WriterTo(8*vg.Inch, vg.Length(n)*vg.Points(12)+1.5*vg.Inch, "svg")
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}

// roundsIn returns the most rounds any benchmark of res has.
func roundsIn(res results) int {
	n := 0
	for _, peers := range res {
		for _, rs := range peers {
			n = max(n, len(rs))
		}
	}
	return n
}

func main() {
	out := flag.String("o", "chart.svg", "the SVG file to write")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: chart [-o chart.svg] [file ...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	res := make(results)
	if err := benchout.ParseFiles(flag.Args(), res); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
	gs := groups(res)
	if len(gs) == 0 {
		fmt.Fprintln(os.Stderr, "chart: no Benchmark<Workload>/peer=<name> results to chart in the input")
		os.Exit(1)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
	if err := render(f, gs, roundsIn(res)); err != nil {
		f.Close()
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}
