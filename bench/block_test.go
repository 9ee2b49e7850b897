package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/semaphore"
)

// A blockPeer is one contender of BlockGetPut: one op takes a free 4 KiB
// block, writes its first byte, and gives it back. Each peer writes its own
// serial and parallel loops so that no indirect call sits in an op of a
// few nanoseconds.
type blockPeer struct {
	name  string
	bench func(b *testing.B, parallel bool)
}

// blockPeers are the contenders of BlockGetPut. bytespool puts its own
// first (block_bytespool_test.go).
var blockPeers = []blockPeer{
	{"syncpool", benchBlockSyncPool},
	{"channel", benchBlockChannel},
	{"semaphore-syncpool", benchBlockSemaphore},
	{"floor", benchBlockFloor},
}

// BenchmarkBlockGetPut: one block get+put on an idle pool.
func BenchmarkBlockGetPut(b *testing.B) { benchBlocks(b, false) }

// BenchmarkBlockGetPutParallel: block get+put under b.RunParallel.
func BenchmarkBlockGetPutParallel(b *testing.B) { benchBlocks(b, true) }

func benchBlocks(b *testing.B, parallel bool) {
	for _, peer := range blockPeers {
		b.Run("peer="+peer.name, func(b *testing.B) {
			b.ReportAllocs()
			peer.bench(b, parallel)
		})
	}
}

// newBlockPool returns a sync.Pool of 4 KiB blocks. It holds *[]byte, not
// []byte, so that Put does not allocate to box a slice header.
func newBlockPool() *sync.Pool {
	return &sync.Pool{New: func() any {
		b := make([]byte, blockSize)
		return &b
	}}
}

// benchBlockSyncPool: a sync.Pool of blocks, uncapped.
func benchBlockSyncPool(b *testing.B, parallel bool) {
	blocks := newBlockPool()
	blocks.Put(blocks.Get())
	b.ResetTimer()
	if !parallel {
		for i := range b.N {
			p := blocks.Get().(*[]byte)
			(*p)[0] = byte(i)
			blocks.Put(p)
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		var i byte
		for pb.Next() {
			p := blocks.Get().(*[]byte)
			(*p)[0] = i
			blocks.Put(p)
			i++
		}
	})
}

// benchBlockChannel: a buffered channel of block indices into an arena,
// prefilled with the whole pool: the classic capped free list.
func benchBlockChannel(b *testing.B, parallel bool) {
	arena := make([]byte, poolBlocks*blockSize)
	free := make(chan uint32, poolBlocks)
	for i := range poolBlocks {
		free <- uint32(i)
	}
	b.ResetTimer()
	if !parallel {
		for i := range b.N {
			idx := <-free
			arena[int(idx)*blockSize] = byte(i)
			free <- idx
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		var i byte
		for pb.Next() {
			idx := <-free
			arena[int(idx)*blockSize] = i
			free <- idx
			i++
		}
	})
}

// benchBlockSemaphore: the original design's per-segment path: one
// semaphore token per block, acquired with context.TODO(), the block from a
// sync.Pool.
func benchBlockSemaphore(b *testing.B, parallel bool) {
	sem := semaphore.NewWeighted(poolBlocks)
	blocks := newBlockPool()
	blocks.Put(blocks.Get())
	ctx := context.TODO()
	b.ResetTimer()
	if !parallel {
		for i := range b.N {
			if err := sem.Acquire(ctx, 1); err != nil {
				b.Fatal(err)
			}
			p := blocks.Get().(*[]byte)
			(*p)[0] = byte(i)
			blocks.Put(p)
			sem.Release(1)
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		var i byte
		for pb.Next() {
			if err := sem.Acquire(ctx, 1); err != nil {
				b.Error(err)
				return
			}
			p := blocks.Get().(*[]byte)
			(*p)[0] = i
			blocks.Put(p)
			sem.Release(1)
			i++
		}
	})
}

// benchBlockFloor: no allocator: each goroutine writes the first byte of a
// block it already owns.
func benchBlockFloor(b *testing.B, parallel bool) {
	arena := make([]byte, poolBlocks*blockSize)
	b.ResetTimer()
	if !parallel {
		for i := range b.N {
			arena[0] = byte(i)
		}
		return
	}
	var next atomic.Int32
	b.RunParallel(func(pb *testing.PB) {
		block := arena[int(next.Add(1)-1)*blockSize:][:blockSize]
		var i byte
		for pb.Next() {
			block[0] = i
			i++
		}
	})
}
