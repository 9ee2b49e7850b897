package kafka

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	p := NewPool(8*64, 64)
	src := make([]byte, 8*64)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for round := range 3 {
		b := p.NewBuffer()
		for _, part := range [][]byte{src[:100], src[100:101], src[101:]} {
			if _, err := b.Write(part); err != nil {
				t.Fatal(err)
			}
		}
		got, err := io.ReadAll(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, src) {
			t.Fatalf("round %d: read back differs from what was written", round)
		}
		b.Free()
	}
	if _, err := p.NewBuffer().Write(make([]byte, 8*64+1)); err != ErrPoolTooSmall {
		t.Errorf("write larger than the pool: %v, want ErrPoolTooSmall", err)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestFIFO checks that a later small allocation does not overtake an
// earlier large one, and that the head accumulates blocks as they come.
func TestFIFO(t *testing.T) {
	p := NewPool(4*64, 64)
	held, _ := p.Allocate(nil, 4)
	large, small := make(chan [][]byte), make(chan [][]byte)
	go func() { b, _ := p.Allocate(nil, 3); large <- b }()
	waitFor(t, "the large allocation to park", func() bool { return p.Waiters() == 1 })
	go func() { b, _ := p.Allocate(nil, 1); small <- b }()
	waitFor(t, "the small allocation to park", func() bool { return p.Waiters() == 2 })

	p.Deallocate(held[:1]) // enough for the small one, but the large one is first
	time.Sleep(20 * time.Millisecond)
	select {
	case <-small:
		t.Fatal("the small allocation overtook the large one")
	case <-large:
		t.Fatal("the large allocation returned with 1 of 3 blocks free")
	default:
	}
	p.Deallocate(held[1:3])
	if got := <-large; len(got) != 3 {
		t.Fatalf("large allocation got %d blocks, want 3", len(got))
	}
	if p.Waiters() != 1 {
		t.Fatalf("%d waiters after the large allocation, want the small one", p.Waiters())
	}
	p.Deallocate(held[3:])
	if got := <-small; len(got) != 1 {
		t.Fatalf("small allocation got %d blocks, want 1", len(got))
	}
}

// TestCap checks that goroutines allocating at once never hold more than
// the pool's blocks, and that all of them finish.
func TestCap(t *testing.T) {
	const total = 16
	p := NewPool(total*64, 64)
	var inUse, peak atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var blocks [][]byte
			for i := range 2000 {
				n := 1 + (g+i)%total
				blocks, _ = p.Allocate(blocks[:0], n)
				now := inUse.Add(int64(n))
				for old := peak.Load(); now > old && !peak.CompareAndSwap(old, now); old = peak.Load() {
				}
				inUse.Add(-int64(n))
				p.Deallocate(blocks)
			}
		})
	}
	wg.Wait()
	if peak.Load() > total {
		t.Errorf("peak %d blocks in use, cap %d", peak.Load(), total)
	}
	if p.Waiters() != 0 || p.n+p.unpooled != total {
		t.Errorf("after the run: %d waiters, %d blocks available; want 0, %d", p.Waiters(), p.n+p.unpooled, total)
	}
}
