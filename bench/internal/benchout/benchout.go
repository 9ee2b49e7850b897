// Package benchout reads the output of go test -bench for bench's
// commands (cmd/ratios, cmd/chart): benchmarks named
// Benchmark<Workload>/peer=<name>, one line per round.
package benchout

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A Result is one benchmark line: its metrics by unit.
type Result map[string]float64

// Results holds every round's results, by workload, then by peer, in round
// order: the n-th result of a benchmark belongs to round n.
type Results map[string]map[string][]Result

// procsSuffix is the -GOMAXPROCS suffix that go test appends to names.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// Parse reads go test -bench output into res. Lines other than benchmark
// results are ignored, and so are benchmarks without a peer= part. A value
// that is not a number is an error.
func Parse(r io.Reader, res Results) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Name, iterations, then value-unit pairs.
		if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		workload, peer, ok := SplitName(f[0])
		if !ok {
			continue
		}
		m := make(Result)
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return fmt.Errorf("%s: bad value %q", f[0], f[i])
			}
			m[f[i+1]] = v
		}
		if res[workload] == nil {
			res[workload] = make(map[string][]Result)
		}
		res[workload][peer] = append(res[workload][peer], m)
	}
	return sc.Err()
}

// ParseFiles parses each named file into res, as Parse does, or standard
// input if names is empty. An error names the file it came from.
func ParseFiles(names []string, res Results) error {
	if len(names) == 0 {
		return Parse(os.Stdin, res)
	}
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		err = Parse(f, res)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// SplitName splits "BenchmarkStream2MiB/peer=floor-2" into "Stream2MiB"
// and "floor"; ok is false for a name without a peer= part.
func SplitName(name string) (workload, peer string, ok bool) {
	parts := strings.Split(procsSuffix.ReplaceAllString(name, ""), "/")
	workload = strings.TrimPrefix(parts[0], "Benchmark")
	for _, p := range parts[1:] {
		if v, found := strings.CutPrefix(p, "peer="); found {
			return workload, v, true
		}
	}
	return "", "", false
}

// Column returns the value of unit in every result that has it, in order.
func Column(rs []Result, unit string) []float64 {
	var out []float64
	for _, r := range rs {
		if v, ok := r[unit]; ok {
			out = append(out, v)
		}
	}
	return out
}

// Median returns the median of xs, NaN if xs is empty.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
