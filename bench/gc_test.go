package bench

import (
	"runtime"
	"testing"
)

// gcHeld is how much data BenchmarkGC holds while it collects.
const gcHeld = 256 << 20

// A gcPeer is one way to hold gcHeld bytes during BenchmarkGC.
type gcPeer struct {
	name string
	// hold makes the data and returns a function that releases it;
	// the data stays reachable until then.
	hold func(b *testing.B) (release func())
}

// gcPeers are the contenders of BenchmarkGC. bytespool puts itself first
// (gc_bytespool_test.go).
var gcPeers = []gcPeer{
	{"syncpool-blocks", holdSyncPoolBlocks},
	{"addcleanup", holdCleanups},
	{"floor", holdFloor},
	{"none", func(*testing.B) func() { return func() {} }},
}

// BenchmarkGC times one forced garbage collection (runtime.GC, which also
// finishes sweeping) while 256 MiB are held: in pool blocks (bytespool), in
// 4 KiB blocks from a sync.Pool, in one big slice (floor), or not at all
// (none). addcleanup holds no data, only what the reclaim contract of
// SPEC.md costs any design that holds the data in 256 Bytes: 256 small
// headers, each with a runtime.AddCleanup.
func BenchmarkGC(b *testing.B) {
	for _, peer := range gcPeers {
		// The data is made once per peer, not once per b.N round, and
		// released before the next peer makes its own.
		var release func()
		b.Run("peer="+peer.name, func(b *testing.B) {
			if release == nil {
				release = peer.hold(b)
			}
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				runtime.GC()
			}
		})
		if release != nil {
			release()
		}
		runtime.GC()
	}
}

// holdSyncPoolBlocks holds the data as 4 KiB blocks got from a sync.Pool,
// each its own heap object.
func holdSyncPoolBlocks(*testing.B) func() {
	blocks := newBlockPool()
	held := make([]*[]byte, gcHeld/blockSize)
	for i := range held {
		held[i] = blocks.Get().(*[]byte)
		(*held[i])[0] = byte(i)
	}
	return func() {
		for _, p := range held {
			blocks.Put(p)
		}
		clear(held)
	}
}

// holdCleanups holds gcHeld/1 MiB headers, as many as bytespool's Bytes,
// each pointing to a body of a Bytes' size and carrying a runtime.AddCleanup
// that would reclaim the body, as each Bytes header does.
func holdCleanups(*testing.B) func() {
	type body struct {
		ptrs  [2]*int // a Bytes' body holds two pointers
		words [12]uint64
	}
	type header struct{ b *body }
	held := make([]*header, gcHeld/(1<<20))
	for i := range held {
		b := new(body)
		held[i] = &header{b}
		runtime.AddCleanup(held[i], func(b *body) { b.ptrs[0], b.words[0] = nil, 0 }, b)
	}
	return func() { clear(held) }
}

// holdFloor holds the data in one pointer-free slice, which the collector
// marks without scanning: the least any holder can cost it.
func holdFloor(*testing.B) func() {
	held := make([]byte, gcHeld)
	for i := 0; i < len(held); i += blockSize {
		held[i] = byte(i) // fault the pages in, as the other peers do
	}
	return func() { runtime.KeepAlive(held) }
}
