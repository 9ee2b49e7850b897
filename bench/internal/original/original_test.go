package original

import (
	"bytes"
	"io"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	p := NewPool(8*64, 64)
	src := make([]byte, 8*64)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for round := range 3 {
		b := p.NewBytes(0)
		if _, err := b.Write(src[:100]); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Write(src[100:]); err != nil {
			t.Fatal(err)
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
}

// TestFreeReturnsAll checks the fix of the original's leak: after Free the
// whole cap is available again.
func TestFreeReturnsAll(t *testing.T) {
	p := NewPool(4*64, 64)
	for range 10 {
		b := p.NewBytes(0)
		if _, err := b.Write(make([]byte, 4*64)); err != nil {
			t.Fatal(err)
		}
		b.Free()
	}
	if !p.sem.TryAcquire(4) {
		t.Fatal("tokens leaked: the full cap is not available after Free")
	}
}

func TestLimits(t *testing.T) {
	p := NewPool(4*64, 64)
	if _, err := p.NewBytes(10).Write(make([]byte, 11)); err != ErrBytesCapacityTooSmall {
		t.Errorf("Write past maxLen: err = %v, want ErrBytesCapacityTooSmall", err)
	}
	if _, err := p.NewBytes(0).Write(make([]byte, 4*64+1)); err != ErrPoolTooSmall {
		t.Errorf("Write past the pool: err = %v, want ErrPoolTooSmall", err)
	}
}
