package fuzz

import (
	"fmt"
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zjj/bytespool/ring"
)

// Header of FuzzRing.
const (
	rhCap      = iota // capacity: 1 + v%70 below 200, else up to ~4000
	rhWorkers         // goroutines of the concurrent phase: 2 + v%3; bit 7: goroutine 0 only pops
	rhPerG            // values each goroutine pushes: 1 + v
	rhPopEvery        // a goroutine pops after every 1 + v%4 pushes
	rhLen
)

// Ops of the sequential phase, kind%4.
const (
	ropPush  = iota // one Push
	ropPop          // one Pop
	ropPushN        // Size%(2*cap+2) Pushes
	ropPopN         // Size%(2*cap+2) Pops
	ropCount
)

func ringCap(v byte) int {
	if v < 200 {
		return 1 + int(v)%70
	}
	return 1 + int(v-200)*73
}

// FuzzRing runs a push/pop script on a ring.Ring against a FIFO model (every
// value, every full and empty report exact), then a concurrent phase of
// goroutines that push disjoint values and pop, after which every value
// pushed has been popped exactly once, and each consumer saw each
// producer's values in order.
func FuzzRing(f *testing.F) {
	addSeeds(f, ringSeeds)
	f.Fuzz(func(t *testing.T, data []byte) {
		in := newInput(data, rhLen, 64)
		h := in.head
		capacity := ringCap(h[rhCap])
		r := ring.New(capacity)
		wantCap := 1 << bits.Len(uint(capacity-1))
		if r.Cap() != wantCap {
			t.Fatalf("New(%d).Cap() = %d; want %d", capacity, r.Cap(), wantCap)
		}
		var model []uint32
		next := uint32(1) // sequential values: 1, 2, ...
		trace := []string{fmt.Sprintf("New(%d)", capacity)}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("%s\nscript so far:\n  %s", fmt.Sprintf(format, args...), strings.Join(trace, "\n  "))
		}
		push := func() {
			ok := r.Push(next)
			if want := len(model) < wantCap; ok != want {
				fail("Push(%d) = %v with %d of %d values held; want %v", next, ok, len(model), wantCap, want)
			}
			if ok {
				model = append(model, next)
				next++
			}
		}
		pop := func() {
			v, ok := r.Pop()
			if len(model) == 0 {
				if ok {
					fail("Pop() = %d, true on an empty ring", v)
				}
				return
			}
			if !ok || v != model[0] {
				fail("Pop() = %d, %v; want %d, true", v, ok, model[0])
			}
			model = model[1:]
		}
		for in.ops > 0 {
			o := in.next()
			n := int(o.Size) % (2*wantCap + 2)
			switch o.kind() % ropCount {
			case ropPush:
				trace = append(trace, "Push")
				push()
			case ropPop:
				trace = append(trace, "Pop")
				pop()
			case ropPushN:
				trace = append(trace, fmt.Sprintf("Push ×%d", n))
				for range n {
					push()
				}
			case ropPopN:
				trace = append(trace, fmt.Sprintf("Pop ×%d", n))
				for range n {
					pop()
				}
			}
			if r.Len() != len(model) {
				fail("Len() = %d; want %d", r.Len(), len(model))
			}
		}

		// Concurrent phase, starting from what the script left.
		workers := 2 + int(h[rhWorkers]&0x7f)%3
		onlyPops := h[rhWorkers]&0x80 != 0
		perG := 1 + int(h[rhPerG])
		popEvery := 1 + int(h[rhPopEvery])%4
		what := fmt.Sprintf("New(%d) holding %d values, %d goroutines pushing %d values each, popping every %d (goroutine 0 only pops: %v)",
			capacity, len(model), workers, perG, popEvery, onlyPops)
		popped := make([][]uint32, workers+1) // [workers] is the final drain
		var producing atomic.Int32
		var failure atomic.Pointer[string]
		setFail := func(format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			failure.CompareAndSwap(nil, &msg)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range workers {
			producer := !(onlyPops && g == 0)
			if producer {
				producing.Add(1)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				popOne := func() bool {
					v, ok := r.Pop()
					if ok {
						popped[g] = append(popped[g], v)
					}
					if l := r.Len(); l < 0 || l > wantCap {
						setFail("Len() = %d outside [0, %d]", l, wantCap)
					}
					return ok
				}
				if !producer {
					for producing.Load() > 0 || r.Len() > 0 {
						if !popOne() {
							runtime.Gosched()
						}
						if failure.Load() != nil {
							return
						}
					}
					return
				}
				defer producing.Add(-1)
				for i := range perG {
					v := uint32(g+1)<<24 | uint32(i)
					for tries := 0; !r.Push(v); tries++ {
						// Full (or a Pop is finishing): make room.
						popOne()
						if tries > 1e6 {
							setFail("goroutine %d: Push(%#x) failed %d times, popping in between", g, v, tries)
							return
						}
						if tries%64 == 63 {
							runtime.Gosched()
						}
					}
					if (i+1)%popEvery == 0 {
						popOne()
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		if msg := failure.Load(); msg != nil {
			t.Fatalf("%s: %s", what, *msg)
		}
		for {
			v, ok := r.Pop()
			if !ok {
				break
			}
			popped[workers] = append(popped[workers], v)
		}
		if r.Len() != 0 {
			t.Fatalf("%s: Len() = %d after Pop reported empty with no goroutine running", what, r.Len())
		}

		// Every value exactly once.
		want := map[uint32]bool{}
		for _, v := range model {
			want[v] = true
		}
		for g := range workers {
			if onlyPops && g == 0 {
				continue
			}
			for i := range perG {
				want[uint32(g+1)<<24|uint32(i)] = true
			}
		}
		seen := map[uint32]int{}
		for c, vs := range popped {
			last := map[uint32]uint32{} // producer -> last value seen by consumer c
			for _, v := range vs {
				if !want[v] {
					t.Fatalf("%s: consumer %d popped %#x, which nobody pushed", what, c, v)
				}
				if seen[v]++; seen[v] > 1 {
					t.Fatalf("%s: %#x popped twice", what, v)
				}
				prod := v >> 24
				if l, ok := last[prod]; ok && v <= l {
					t.Fatalf("%s: consumer %d popped %#x after %#x of the same producer", what, c, v, l)
				}
				last[prod] = v
			}
		}
		if len(seen) != len(want) {
			for v := range want {
				if seen[v] == 0 {
					t.Fatalf("%s: %#x was pushed and never popped (%d of %d values came out)", what, v, len(seen), len(want))
				}
			}
		}

		// And the ring still works at its edges: exactly Cap() pushes fit.
		for i := range wantCap {
			if !r.Push(uint32(i)) {
				t.Fatalf("%s: after the run, Push %d of %d failed", what, i, wantCap)
			}
		}
		if r.Push(0) {
			t.Fatalf("%s: after the run, Push %d of %d succeeded", what, wantCap+1, wantCap)
		}
		for i := range wantCap {
			if v, ok := r.Pop(); !ok || v != uint32(i) {
				t.Fatalf("%s: after the run, Pop %d = %d, %v; want %d, true", what, i, v, ok, i)
			}
		}
		if v, ok := r.Pop(); ok {
			t.Fatalf("%s: Pop on the emptied ring = %d, true", what, v)
		}
	})
}
