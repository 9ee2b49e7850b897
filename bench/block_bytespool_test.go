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
		{"bytespool", benchBlockRing},
		{"bytespool-bytes", benchBlockBytes},
	}, blockPeers...)
}

// benchBlockRing: bytespool's free list itself, since the library has no
// public single-block API: a ring prefilled with the index of every block
// of a 100 MiB arena; an op pops an index, writes the block's first byte,
// and pushes the index back. The ring is FIFO, so the block an op gets is
// the one freed longest ago, as in the pool.
func benchBlockRing(b *testing.B, parallel bool) {
	arena := make([]byte, poolBlocks*blockSize)
	free := ring.New(poolBlocks)
	for i := range poolBlocks {
		if !free.Push(uint32(i)) {
			b.Fatalf("ring.New(%d) holds only %d values", poolBlocks, i)
		}
	}
	b.ResetTimer()
	if !parallel {
		for i := range b.N {
			idx, ok := free.Pop()
			if !ok {
				b.Fatal("Pop: ring empty, but every block is free and nothing else runs")
			}
			arena[int(idx)*blockSize] = byte(i)
			if !free.Push(idx) {
				b.Fatal("Push: ring full, but a block is out and nothing else runs")
			}
		}
		return
	}
	// Under concurrency Pop can report empty, and Push full, while
	// another goroutine is between its claim and its publish (see package
	// ring); like the pool's getBlock and putBlock, the loop yields and
	// tries again, since a block and a free slot are known to exist. How
	// often that happens is reported as retries/op.
	var retries atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		var i byte
		var n int64
		for pb.Next() {
			idx, ok := free.Pop()
			for !ok {
				n++
				runtime.Gosched()
				idx, ok = free.Pop()
			}
			arena[int(idx)*blockSize] = i
			for !free.Push(idx) {
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
