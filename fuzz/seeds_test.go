package fuzz

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// A seed is a named input of a fuzz target, written in terms of its header
// and its ops. Every target f.Adds its seeds, and TestSeedCorpus checks that
// testdata/fuzz/<Target>/<name> holds each of them (with
// BYTESPOOL_WRITE_SEEDS=1 it writes them instead).
type seed struct {
	name string
	head []byte
	ops  []op
}

func (s seed) data() []byte { return encode(s.head, s.ops) }

// addSeeds adds seeds to f's corpus.
func addSeeds(f *testing.F, seeds []seed) {
	for _, s := range seeds {
		f.Add(s.data())
	}
}

// mk builds an op.
func mk(kind byte, aux byte, size uint16) op {
	return op{Code: uint16(aux)<<8 | uint16(kind), Size: size}
}

// blockSizeSel returns the header byte that picks block size bs.
func blockSizeSel(bs int) byte {
	for i, v := range blockSizes {
		if v == bs {
			return byte(i)
		}
	}
	panic(fmt.Sprint("no selector for block size ", bs))
}

// FuzzBytesOps seeds. Size helpers: small(n) is n, blocks(k, d) is k*bs+d,
// bytesN(n) is n.
var bytesOpsSeeds = func() []seed {
	w := func(s uint16) op { return mk(bopWrite, 1, s) }
	ws := func(s uint16) op { return mk(bopWriteString, 2, s) }
	wb := mk(bopWriteByte, 3, 0)
	r := func(s uint16) op { return mk(bopRead, 0, s) }
	rb := mk(bopReadByte, 0, 0)
	rf := func(s uint16) op { return mk(bopReadFrom, 4, s) }
	wt := mk(bopWriteTo, 0, 0)
	reset := mk(bopReset, 0, 0)
	ln := mk(bopLen, 0, 0)
	cl := mk(kindClose, 0, 0)
	head := func(bs int, capSel, maxLenSel, extra byte) []byte {
		return []byte{blockSizeSel(bs), capSel, maxLenSel, extra}
	}
	return []seed{
		{"bs1-basic", head(1, 0, 0, 0), []op{
			w(small(5)), r(small(2)), rb, w(small(0)), ws(small(0)), rf(small(3)), ln, r(small(0)),
			wt, r(small(1)), rb, r(small(0)), ws(small(4)), reset, ln, rb,
		}},
		{"bs1-cap1", head(1, 1, 0, 0), []op{
			wb, wb, w(small(2)), rf(small(1)), rf(small(0)), rb, rf(small(1)), rf(small(3)),
			ln, rb, w(small(1)), reset, rb, wb,
		}},
		{"exact-fit-maxlen", head(16, 0, 2|1<<2, 0), []op{ // maxLen 32 = 2 blocks
			w(blocks(2, 0)), wb, ws(small(1)), w(small(0)), rf(small(0)), rf(small(1)),
			r(small(1)), w(small(1)), wb, r(blocks(1, 0)), ws(small(15)), ws(small(1)),
			wt, w(blocks(2, 1)), w(blocks(2, -1)), wb, wb, rf(small(2)), ln,
		}},
		{"exact-fit-cap", head(8, 2, 0, 0), []op{ // 2 blocks of 8 bytes
			w(blocks(2, 0)), wb, r(blocks(1, 0)), w(blocks(1, 0)), r(small(1)), wb,
			r(blocks(1, -1)), wb, w(small(7)), w(small(1)), rf(small(1)), wt,
			rf(blocks(2, 0)), rf(small(0)), ln, r(blocks(3, 0)), w(blocks(2, 1)), w(blocks(2, 0)),
		}},
		{"readfrom-into-room", head(16, 2|1<<2, 0, 0), []op{ // 3 blocks of 16 bytes
			w(small(3)), rf(blocks(1, 0)), ln, w(small(13)), w(small(1)), r(small(3)),
			rf(blocks(2, 0)), r(blocks(1, 0)), rf(blocks(1, 5)), wt, rf(blocks(3, 7)), reset,
			rf(small(15)), rf(small(2)), wb, r(small(15)), rb, rb,
		}},
		{"readfrom-maxlen-exact", head(4, 0, 3, 0), []op{ // maxLen 4-1 = 3
			rf(small(3)), rf(small(0)), rf(small(1)), rb, rf(small(2)), wt,
			rf(small(4)), ln, r(small(3)), w(small(3)), wb, reset, ws(small(3)),
		}},
		{"maxlen-one-under-block", head(100, 0, 3, 0), []op{ // maxLen 99
			w(blocks(1, -1)), wb, r(small(1)), wb, wt, ws(blocks(1, 0)), rf(blocks(1, 0)),
			r(bytesN(50)), rf(blocks(1, 0)), ln,
		}},
		{"bs8192-one-block-odd-maxmemory", head(8192, 1, 0, 0xff), []op{
			w(blocks(1, 0)), wb, rf(small(1)), r(bytesN(100)), wb, r(blocks(1, 0)),
			rf(blocks(1, 0)), rf(small(1)), reset, rf(blocks(1, 1)), wt, w(blocks(1, 1)),
		}},
		{"close-midway", head(7, 2|2<<2, 1|3<<2, 0), []op{ // 4 blocks of 7, maxLen 4
			w(small(4)), wb, r(small(2)), cl, w(small(0)), w(small(1)), wb, r(small(0)),
			r(small(1)), rb, rf(small(0)), wt, reset, ln, cl,
		}},
		{"bs3-tight-cap", head(3, 2|1<<2, 0, 0x81), []op{ // 3 blocks of 3, MaxMemory 10
			w(small(9)), w(small(1)), r(small(1)), w(small(1)), r(small(3)), w(small(1)),
			w(small(3)), rf(small(3)), r(small(8)), rf(small(9)), rf(small(10)), ln,
			ws(small(2)), r(small(2)), rf(small(7)), wt,
		}},
		{"big-block-computed", []byte{200, 3, 2, 0}, []op{
			w(blocks(3, 7)), rf(blocks(2, -3)), r(bytesN(511)), ws(blocks(1, 1)), wt,
			rf(bytesN(300)), w(bytesN(511)), r(blocks(1, 0)), reset,
		}},
	}
}()

// TestSeedCorpus checks that the committed corpus holds every seed, and
// that the seeds decode to the ops they were written from.
func TestSeedCorpus(t *testing.T) {
	write := os.Getenv("BYTESPOOL_WRITE_SEEDS") == "1"
	for target, seeds := range allSeeds() {
		for _, s := range seeds {
			data := s.data()
			in := newInput(data, len(s.head), 1<<20)
			if got := in.all(); !reflect.DeepEqual(got, s.ops) && !(len(got) == 0 && len(s.ops) == 0) {
				t.Errorf("%s/%s: decodes to %v, want %v", target, s.name, got, s.ops)
			}
			file := filepath.Join("testdata", "fuzz", target, s.name)
			content := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data))
			if write {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, content, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(file)
			if err != nil || !bytes.Equal(got, content) {
				t.Errorf("%s is missing or stale; regenerate the corpus with BYTESPOOL_WRITE_SEEDS=1 go test -run TestSeedCorpus ./fuzz", file)
			}
		}
	}
}

func allSeeds() map[string][]seed {
	return map[string][]seed{
		"FuzzBudgets":       budgetSeeds,
		"FuzzBytesOps":      bytesOpsSeeds,
		"FuzzHandOver":      handOverSeeds,
		"FuzzInterleavings": interleaveSeeds,
		"FuzzPipe":          pipeSeeds,
		"FuzzRing":          ringSeeds,
	}
}

// FuzzBudgets seeds. Header: block size selector, pool cap selector (see
// capFor), four budgets' (parent, cap) and four Bytes' (budget, maxLen)
// selectors (see runBudgets). An op's aux picks the Bytes.
var budgetSeeds = func() []seed {
	w := func(x byte, s uint16) op { return mk(gopWrite, x, s) }
	r := func(x byte, s uint16) op { return mk(gopRead, x, s) }
	rf := func(x byte, s uint16) op { return mk(gopReadFrom, x, s) }
	reset := func(x byte) op { return mk(gopReset, x, 0) }
	free := func(x byte) op { return mk(gopFree, x, 0) }
	// budget i: parent selector par (par%(i+1)-1), cap c blocks.
	head := func(bs int, capSel byte, tree [8]byte, bytesSel [8]byte) []byte {
		h := []byte{blockSizeSel(bs), capSel}
		h = append(h, tree[:]...)
		return append(h, bytesSel[:]...)
	}
	return []seed{
		// Pool of 8 blocks; budget 0 (cap 4) of the pool, budget 1 (cap 2)
		// in 0, budget 2 (no cap) in 0, budget 3 (cap 3) of the pool;
		// Bytes 0 in 1, 1 in 2, 2 in 3, 3 of the pool.
		{"bs16-nested-caps", head(16, 2+4*6, [8]byte{0, 4, 1, 2, 1, 0, 0, 3}, [8]byte{2, 0, 3, 0, 4, 0, 0, 0}), []op{
			w(0, blocks(1, 3)), w(1, blocks(2, 0)), w(0, blocks(1, 0)), w(1, small(1)), r(0, small(7)),
			w(2, blocks(3, 0)), w(3, blocks(2, 0)), w(3, small(1)), rf(1, blocks(1, 2)), reset(1),
			w(0, blocks(2, 0)), free(0), w(0, blocks(2, 0)), r(2, bytesN(40)), w(1, blocks(2, 0)),
		}},
		// Unlimited pool, one chain of capped budgets, maxLens.
		{"bs7-chain-maxlen", head(7, 0, [8]byte{0, 6, 1, 5, 2, 3, 3, 1}, [8]byte{4, 1 + 4*9, 3, 0, 2, 2, 0, 0}), []op{
			w(0, small(12)), w(1, blocks(3, 0)), w(0, small(3)), rf(0, small(8)), r(1, small(5)),
			w(2, blocks(3, 4)), free(1), w(1, blocks(1, 1)), reset(2), w(3, blocks(3, 0)), w(0, small(1)),
		}},
	}
}()
