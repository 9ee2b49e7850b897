#!/usr/bin/env bash
# run.sh runs the bench module's benchmarks in rounds and prints benchstat's
# summary, then bytespool's ratios against the floor and the best peer with
# the targets of the bench issue.
#
# Each round is one `go test -run '^$' -bench $BENCH -benchmem -count=1` (the
# test binary is built once and rerun), so within a round every peer of a
# workload is measured seconds apart, under the same machine noise; the
# ratios are taken per round and their median is reported.
#
# It also draws the per-round ratios as an SVG chart (cmd/chart) next to the
# results file: <results>.svg.
#
# Usage: bench/run.sh   (from any directory)
#
# Environment:
#   ROUNDS     number of rounds (default 6)
#   BENCH      -bench regexp (default .)
#   BENCHTIME  -benchtime, e.g. 0.5s or 100x (default: go test's, 1s)
#   OUT        file the raw output of every round is appended to
#              (default bench/results/<UTC time>.txt)
set -euo pipefail

out=${OUT:-}
if [[ -n $out && $out != /* ]]; then
	out=$PWD/$out # relative to where run.sh was started, not to bench/
fi

cd "$(dirname "$0")"

rounds=${ROUNDS:-6}
bench=${BENCH:-.}
benchtime=${BENCHTIME:-}
out=${out:-$PWD/results/$(date -u +%Y%m%dT%H%M%SZ).txt}

if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
	echo "run.sh: ROUNDS must be a positive integer, got '$rounds'" >&2
	exit 2
fi

# benchstat: from PATH, else from GOBIN (or GOPATH/bin), installing it there
# if missing.
benchstat=$(command -v benchstat || true)
if [[ -z $benchstat ]]; then
	gobin=$(go env GOBIN)
	[[ -n $gobin ]] || gobin=$(go env GOPATH)/bin
	benchstat=$gobin/benchstat
	if [[ ! -x $benchstat ]]; then
		echo "run.sh: installing benchstat" >&2
		go install golang.org/x/perf/cmd/benchstat@latest
	fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/bench.test" .
go build -o "$tmp/ratios" ./cmd/ratios
go build -o "$tmp/chart" ./cmd/chart

args=(-test.run '^$' -test.bench "$bench" -test.benchmem -test.count=1)
if [[ -n $benchtime ]]; then
	args+=(-test.benchtime "$benchtime")
fi

mkdir -p "$(dirname "$out")"
: >"$out"
for ((i = 1; i <= rounds; i++)); do
	echo "run.sh: round $i of $rounds" >&2
	# The raw lines go to the results file, and to stderr to show progress.
	"$tmp/bench.test" "${args[@]}" | tee -a "$out" >&2
done

echo
echo "== benchstat ($rounds rounds)"
echo
"$benchstat" "rounds=$out"
echo
echo "== ratios"
echo
"$tmp/ratios" "$out"
svg=${out%.txt}.svg
"$tmp/chart" -o "$svg" "$out"
echo
echo "raw results: $out"
echo "chart: $svg"
