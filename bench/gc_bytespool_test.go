package bench

import (
	"runtime"
	"testing"

	"github.com/zjj/bytespool"
)

func init() {
	gcPeers = append([]gcPeer{{"bytespool", holdBytespool}}, gcPeers...)
	gcGoalPeers = append([]gcGoalPeer{{"bytespool", holdBytespoolGoal}}, gcGoalPeers...)
}

// holdBytespool holds the data in 256 Bytes of 1 MiB each, from a pool
// capped at exactly 256 MiB.
//
// release frees the Bytes and trims the pool before it drops it, so that
// the pool's memory has gone back to the system when release returns. The
// pool itself would unmap it only from its cleanup, after the collection
// that finds it unreachable, on the runtime's cleanup goroutine: the
// kernel's work of freeing 256 MiB of resident pages, some tens of
// milliseconds, would then run while the next peer or pair side is
// measured, as the heap's freed memory would if the GC pairs did not call
// debug.FreeOSMemory (see BenchmarkPaired). Unmapping pages that are no
// longer resident costs next to nothing.
func holdBytespool(b *testing.B) func() {
	const each = 1 << 20
	p := bytespool.NewBytesPool(gcHeld, blockSize)
	src := payload(each, 0)
	held := make([]*bytespool.Bytes, gcHeld/each)
	for i := range held {
		held[i] = p.NewBytes(0)
		if _, err := held[i].Write(src); err != nil {
			b.Fatal(err)
		}
	}
	return func() {
		for _, buf := range held {
			buf.Free()
		}
		clear(held)
		p.Trim()
	}
}

// holdBytespoolGoal holds 1 MiB in one Bytes of a pool capped at 1 GiB,
// BenchmarkGCGoal's holder.
func holdBytespoolGoal(tb testing.TB) func() {
	p, err := bytespool.New(bytespool.Config{MaxMemory: 1 << 30})
	if err != nil {
		tb.Fatal(err)
	}
	buf := p.NewBytes(0)
	if _, err := buf.Write(payload(1<<20, 0)); err != nil {
		tb.Fatal(err)
	}
	return func() {
		buf.Free()
		runtime.KeepAlive(p)
	}
}
