package fuzz

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zjj/bytespool"
)

// Header of FuzzBudgets: block size, pool cap, then for each of four
// budgets its parent and its cap, then for each of four Bytes its budget
// and its maxLen.
const (
	ghBlockSize = iota
	ghCap
	ghBudgets                             // 4 × (parent, cap)
	ghBytes   = ghBudgets + 2*fuzzBudgets // 4 × (budget, maxLen)
	ghLen     = ghBytes + 2*fuzzBudgetBytes
)

const (
	fuzzBudgets     = 4
	fuzzBudgetBytes = 4
)

// Ops of FuzzBudgets, from op.kind()%gopCount; op.aux()%4 picks the Bytes.
const (
	gopWrite = iota
	gopRead
	gopReadFrom
	gopReset
	gopFree // and make a new Bytes of the same budget
	gopCount
)

// budgetNode is the model of one budget: its parent (-1 for the pool) and
// its cap in blocks (0 = none).
type budgetNode struct {
	parent, cap int
}

// FuzzBudgets runs a script of writes, reads, ReadFroms, Resets and Frees
// on four Bytes spread over a tree of up to four budgets of one pool, all
// from one goroutine, and checks every result and every level's
// BlocksInUse against the models: a write that passes the smallest cap on
// its path (counting what its Bytes holds) fails with ErrPoolTooSmall at
// once; one that fits the caps but not the room left at some level waits,
// and gives up with its (short) context, having changed nothing; every
// other write goes through. At the end, with everything freed, every level
// is back to 0.
func FuzzBudgets(f *testing.F) {
	addSeeds(f, budgetSeeds)
	f.Fuzz(runBudgets)
}

func runBudgets(t *testing.T, data []byte) {
	in := newInput(data, ghLen, 48)
	h := in.head
	bs := blockSizeFor(h[ghBlockSize])
	poolCap, maxMemory := capFor(h[ghCap], 0, bs)
	p, err := bytespool.New(bytespool.Config{MaxMemory: maxMemory, BlockSize: bs})
	if err != nil {
		t.Fatalf("New(%d, %d): %v", maxMemory, bs, err)
	}
	nodes := make([]budgetNode, fuzzBudgets)
	budgets := make([]*bytespool.Budget, fuzzBudgets)
	header := fmt.Sprintf("pool: BlockSize %d, %d blocks (0 = unlimited);", bs, poolCap)
	for i := range nodes {
		par := int(h[ghBudgets+2*i])%(i+1) - 1 // -1 (the pool) or an earlier budget
		c := int(h[ghBudgets+2*i+1]) % 7       // 0 = none, else 1..6 blocks
		nodes[i] = budgetNode{parent: par, cap: c}
		if par < 0 {
			budgets[i] = p.NewBudget(c * bs)
		} else {
			budgets[i] = budgets[par].NewBudget(c * bs)
		}
		header += fmt.Sprintf(" budget %d: parent %d cap %d;", i, par, c)
	}
	// limit is the smallest cap on the path of budget i (-1: the pool).
	limit := func(i int) int {
		l := poolCap
		for ; i >= 0; i = nodes[i].parent {
			if c := nodes[i].cap; c > 0 && (l == 0 || c < l) {
				l = c
			}
		}
		return l
	}
	var bufs [fuzzBudgetBytes]*bytespool.Bytes
	var models [fuzzBudgetBytes]*bytesModel
	var owner [fuzzBudgetBytes]int // the budget of each Bytes, -1 for the pool
	newBytes := func(x int) {
		maxLen := maxLenFor(h[ghBytes+2*x+1], bs)
		if owner[x] < 0 {
			bufs[x] = p.NewBytes(maxLen)
		} else {
			bufs[x] = budgets[owner[x]].NewBytes(maxLen)
		}
		models[x] = newBytesModel(bs, limit(owner[x]), maxLen)
	}
	for x := range bufs {
		owner[x] = int(h[ghBytes+2*x])%(fuzzBudgets+1) - 1
		newBytes(x)
		header += fmt.Sprintf(" Bytes %d: budget %d maxLen %d;", x, owner[x], models[x].maxLen)
	}
	s := newScript(t, header)
	names := [fuzzBudgetBytes]string{"0.", "1.", "2.", "3."}

	// inUse is what the models say level i (-1: the pool) holds.
	inUse := func(i int) int {
		n := 0
		for x, m := range models {
			for l := owner[x]; ; l = nodes[l].parent {
				if l == i {
					n += m.Blocks()
					break
				}
				if l < 0 {
					break
				}
			}
		}
		return n
	}
	// fits reports whether need more blocks for a Bytes of budget i are
	// free at every level of its path now.
	fits := func(i, need int) bool {
		if poolCap > 0 && inUse(-1)+need > poolCap {
			return false
		}
		for ; i >= 0; i = nodes[i].parent {
			if c := nodes[i].cap; c > 0 && inUse(i)+need > c {
				return false
			}
		}
		return true
	}
	checkLevels := func() {
		t.Helper()
		if got, want := p.Stats().BlocksInUse, inUse(-1); got != want {
			s.fail("pool BlocksInUse = %d; want %d", got, want)
		}
		for i, b := range budgets {
			st := b.Stats()
			if want := inUse(i); st.BlocksInUse != want {
				s.fail("budget %d BlocksInUse = %d; want %d", i, st.BlocksInUse, want)
			}
			if nodes[i].cap > 0 && st.BlocksInUse > nodes[i].cap {
				s.fail("budget %d holds %d blocks, over its cap %d", i, st.BlocksInUse, nodes[i].cap)
			}
			if st.BlockWaiters != 0 {
				s.fail("budget %d has %d waiters", i, st.BlockWaiters)
			}
		}
	}

	for i := 0; in.ops > 0; i++ {
		o := in.next()
		n := sizeFor(o.Size, bs)
		x := int(o.aux()) % fuzzBudgetBytes
		b, m, name := bufs[x], models[x], names[x]
		switch o.kind() % gopCount {
		case gopWrite:
			src := pattern(uint32(i), n)
			s.op("%sWrite(%d bytes)", name, n)
			trial := m.clone()
			want, werr := trial.Write(src)
			ctx := context.Background()
			if werr == nil && !fits(owner[x], trial.Blocks()-m.Blocks()) {
				// It would wait: give up soon, having changed nothing.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 100*time.Microsecond)
				defer cancel()
				want, werr = 0, context.DeadlineExceeded
			} else {
				models[x] = trial
			}
			got, err := b.WriteContext(ctx, src)
			s.check("Write", int64(got), err, int64(want), werr)
		case gopRead:
			s.read(name, b, m, n)
		case gopReadFrom:
			src := pattern(uint32(i), n)
			trial := m.clone()
			trial.ReadFrom(src)
			if !fits(owner[x], trial.Blocks()-m.Blocks()) {
				s.op("%sReadFrom(%d bytes) skipped: it would wait", name, n)
				continue
			}
			s.readFrom(name, b, m, src)
		case gopReset:
			s.op("%sReset()", name)
			b.Reset()
			m.Reset()
		case gopFree:
			s.op("%sFree(), NewBytes", name)
			b.Free()
			newBytes(x)
		}
		checkLevels()
	}
	for x, b := range bufs {
		b.Free()
		models[x] = newBytesModel(bs, 0, 0)
	}
	checkLevels()
	s.log()
}
