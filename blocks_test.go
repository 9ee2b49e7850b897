package bytespool

import (
	"testing"
)

// Benchmarks of the allocator's fast paths, so that a change to it can be
// judged without the bench module: reserve, take and give back one block
// (the path of a small message), and a run of 16 (the path of a 64 KiB
// write, with 4 KiB blocks). Each op leaves the pool as it found it.

func benchPool(b *testing.B) *BytesPool {
	p, err := New(Config{MaxMemory: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkAllocOneBlock(b *testing.B) {
	p := benchPool(b)
	shard := p.newShard()
	b.ReportAllocs()
	for b.Loop() {
		blk, ok := p.tryGetBlock(shard)
		if !ok {
			b.Fatal("no block")
		}
		p.freeBlock(blk, shard)
	}
}

func BenchmarkAllocRun(b *testing.B) {
	p := benchPool(b)
	shard := p.newShard()
	var dst [16]uint32
	b.ReportAllocs()
	for b.Loop() {
		if !p.tryReserve(len(dst), shard) {
			b.Fatal("no blocks")
		}
		p.getBlocks(dst[:], shard)
		f := freer{a: &p.allocator, shard: shard}
		for _, blk := range dst {
			f.add(blk)
		}
		f.done()
	}
}

func BenchmarkAllocOneBlockParallel(b *testing.B) {
	p := benchPool(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		shard := p.newShard()
		for pb.Next() {
			blk, ok := p.tryGetBlock(shard)
			if !ok {
				b.Error("no block")
				return
			}
			p.freeBlock(blk, shard)
		}
	})
}

func BenchmarkAllocRunParallel(b *testing.B) {
	p := benchPool(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		shard := p.newShard()
		var dst [16]uint32
		for pb.Next() {
			if !p.tryReserve(len(dst), shard) {
				b.Error("no blocks")
				return
			}
			p.getBlocks(dst[:], shard)
			f := freer{a: &p.allocator, shard: shard}
			for _, blk := range dst {
				f.add(blk)
			}
			f.done()
		}
	})
}
