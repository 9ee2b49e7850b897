package bench

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/zjj/bytespool"
	"github.com/zjj/bytespool/ring"
)

func init() {
	blockPeers = append([]blockPeer{
		{"bytespool", benchBlockRings},
		{"bytespool-bytes", benchBlockBytes},
		{"bytespool-shared-ring", benchBlockSharedRing},
	}, blockPeers...)
}

// benchBlockRings: bytespool's free list itself, since the library has no
// public single-block API, laid out as the pool lays it out: one ring (package
// ring) per shard, shardsFor(GOMAXPROCS) of them, together prefilled with
// the index of every block of a 100 MiB arena. An op pops an index from the
// goroutine's home shard (from the others if that one is empty), writes the
// block's first byte, and pushes the index back to the home shard, as a
// Bytes does with its own home shard. Serially there is one goroutine, so
// one shard is used. The rings are FIFO, so the block an op gets is the one
// freed longest ago, as in the pool.
func benchBlockRings(b *testing.B, parallel bool) {
	shards := 1
	if parallel {
		shards = shardsFor(runtime.GOMAXPROCS(0))
	}
	benchBlockFreeList(b, parallel, shards)
}

// benchBlockSharedRing: the free list as one ring shared by every
// goroutine, as it was before the pool had shards: what the rings cost
// when all cores hit one of them.
func benchBlockSharedRing(b *testing.B, parallel bool) {
	benchBlockFreeList(b, parallel, 1)
}

// shardsFor is the pool's shard count for a given GOMAXPROCS (see
// bytespool.BytesPool): the next power of two, at most 8.
func shardsFor(procs int) int {
	n := 1
	for n < procs && n < 8 {
		n *= 2
	}
	return n
}

func benchBlockFreeList(b *testing.B, parallel bool, shards int) {
	arena := make([]byte, poolBlocks*blockSize)
	free := make([]*ring.Ring, shards)
	for s := range free {
		free[s] = ring.New(poolBlocks)
	}
	for i := range poolBlocks {
		if !free[i%shards].Push(uint32(i)) {
			b.Fatalf("ring.New(%d) holds only %d values", poolBlocks, i/shards)
		}
	}
	b.ResetTimer()
	if !parallel {
		home := free[0]
		for i := range b.N {
			idx, ok := home.Pop()
			if !ok {
				b.Fatal("Pop: ring empty, but every block is free and nothing else runs")
			}
			arena[int(idx)*blockSize] = byte(i)
			if !home.Push(idx) {
				b.Fatal("Push: ring full, but a block is out and nothing else runs")
			}
		}
		return
	}
	// Under concurrency Pop can report empty, and Push full, while
	// another goroutine is between its claim and its publish (see package
	// ring); like the pool's getBlock and putBlock, the loop then looks
	// in the other shards, yields and tries again, since a block and a
	// free slot are known to exist. How often it yields is reported as
	// retries/op.
	var retries atomic.Int64
	var next atomic.Int32
	b.RunParallel(func(pb *testing.PB) {
		shard := int(next.Add(1)-1) % shards
		home := free[shard]
		var i byte
		var n int64
		for pb.Next() {
			idx, ok := home.Pop()
			for s := 1; !ok; s++ {
				if s%shards == 0 {
					n++
					runtime.Gosched()
				}
				idx, ok = free[(shard+s)%shards].Pop()
			}
			arena[int(idx)*blockSize] = i
			for !home.Push(idx) {
				n++
				runtime.Gosched()
			}
			i++
		}
		retries.Add(n)
	})
	b.ReportMetric(float64(retries.Load())/float64(b.N), "retries/op")
}

// benchBlockBytes: the public path to one block: a 4 KiB Write, which
// takes a block from the pool, and a 4 KiB Read, which hands it back, on a
// Bytes that lives across ops (one per goroutine).
func benchBlockBytes(b *testing.B, parallel bool) {
	p := bytespool.NewBytesPool(poolMemory, blockSize)
	type worker struct {
		buf      *bytespool.Bytes
		src, dst []byte
	}
	workers := make([]worker, 1)
	if parallel {
		workers = make([]worker, runtime.GOMAXPROCS(0))
	}
	for i := range workers {
		workers[i] = worker{p.NewBytes(0), make([]byte, blockSize), make([]byte, blockSize)}
		defer workers[i].buf.Free()
	}
	b.SetBytes(blockSize)
	b.ResetTimer()
	if !parallel {
		w := &workers[0]
		for range b.N {
			if err := writeReadBlock(w.buf, w.src, w.dst); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	var next atomic.Int32
	b.RunParallel(func(pb *testing.PB) {
		w := &workers[next.Add(1)-1]
		for pb.Next() {
			if err := writeReadBlock(w.buf, w.src, w.dst); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func writeReadBlock(buf *bytespool.Bytes, src, dst []byte) error {
	if _, err := buf.Write(src); err != nil {
		return err
	}
	n, err := buf.Read(dst)
	return readChunk(n, err, dst)
}
