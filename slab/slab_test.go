package slab

import (
	"math"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewPanics(t *testing.T) {
	tests := []struct {
		name                 string
		blockSize, maxBlocks int
		want                 string
	}{
		{"blockSize 0", 0, 1, "slab: blockSize must be positive, got 0"},
		{"blockSize -1", -1, 0, "slab: blockSize must be positive, got -1"},
		{"maxBlocks -1", 1, -1, "slab: maxBlocks must not be negative, got -1"},
		{"overflow", math.MaxInt/2 + 1, 2,
			"slab: blockSize*maxBlocks overflows int (blockSize " + strconv.Itoa(math.MaxInt/2+1) + ", maxBlocks 2)"},
		{"overflow max blockSize", math.MaxInt, 2,
			"slab: blockSize*maxBlocks overflows int (blockSize " + strconv.Itoa(math.MaxInt) + ", maxBlocks 2)"},
	}
	if strconv.IntSize == 64 {
		// A variable, not a constant: MaxBlocks+1 does not fit in a 32-bit int.
		tooMany := uint64(MaxBlocks) + 1
		tests = append(tests, struct {
			name                 string
			blockSize, maxBlocks int
			want                 string
		}{"maxBlocks > MaxBlocks", 1, int(tooMany), "slab: maxBlocks must be at most MaxBlocks (4294967295), got 4294967296"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.PanicsWithValue(t, tt.want, func() { New(tt.blockSize, tt.maxBlocks) })
		})
	}
}

func TestNewValidEdges(t *testing.T) {
	// Unlimited arenas allocate nothing in New, whatever the block size.
	for _, bs := range []int{1, 4096, math.MaxInt} {
		a := New(bs, 0)
		assert.Equal(t, bs, a.BlockSize())
		assert.Equal(t, 0, a.Limit())
		assert.Equal(t, 0, a.Slabs())
		assert.Equal(t, 0, a.Carved())
	}
	a := New(3, 5)
	assert.Equal(t, 3, a.BlockSize())
	assert.Equal(t, 5, a.Limit())
}

// pattern is the byte that block i holds at offset j once fill has run: the
// index in little-endian order, repeated, so adjacent blocks always differ,
// and flipped so that no block's pattern is the zero of fresh memory.
func pattern(i uint32, j int) byte { return byte(i>>(8*(j%4))) ^ 0xA5 }

func isZero(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }

// fill writes block i's pattern into it.
func fill(a *Arena, i uint32) {
	b := a.Block(i)
	for j := range b {
		b[j] = pattern(i, j)
	}
}

// checkBlocks fills blocks [0, n), then verifies them with verifyBlocks.
func checkBlocks(t *testing.T, a *Arena, n int) {
	t.Helper()
	for i := range uint32(n) {
		fill(a, i)
	}
	verifyBlocks(t, a, n)
}

// verifyBlocks checks that each of the filled blocks [0, n) has the expected
// length and capacity, still holds its own pattern, and that no two blocks
// share a byte of memory.
func verifyBlocks(t *testing.T, a *Arena, n int) {
	t.Helper()
	bs := a.BlockSize()
	starts := make([]uintptr, n)
	for i := range uint32(n) {
		b := a.Block(i)
		if len(b) != bs || cap(b) != bs {
			require.Failf(t, "wrong block size", "block %d has len %d, cap %d, want %d", i, len(b), cap(b), bs)
		}
		for j := range b {
			if b[j] != pattern(i, j) {
				require.Failf(t, "block overwritten", "block %d byte %d = %#x, want %#x", i, j, b[j], pattern(i, j))
			}
		}
		starts[i] = uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	}
	slices.Sort(starts)
	for i := 1; i < n; i++ {
		if starts[i]-starts[i-1] < uintptr(bs) {
			require.Failf(t, "blocks overlap", "blocks start at %#x and %#x, %d bytes apart", starts[i-1], starts[i], bs)
		}
	}
}

func TestLimited(t *testing.T) {
	const bs, n = 7, 100
	a := New(bs, n)
	assert.Equal(t, 1, a.Slabs())
	assert.Equal(t, n, a.SlabBlocks(0))
	assert.Equal(t, 0, a.SlabBlocks(1))
	assert.Equal(t, 0, a.SlabBlocks(-1))

	for want := range uint32(n) {
		i, ok := a.Carve()
		require.True(t, ok, "carve %d", want)
		require.Equal(t, want, i, "indices are handed out in order")
		require.Equal(t, int(want)+1, a.Carved())
		require.Equal(t, 0, a.SlabOf(i))
		k, pos := a.Locate(i)
		require.Equal(t, [2]int{0, int(i)}, [2]int{k, pos}, "Locate(%d)", i)
		require.True(t, isZero(a.Block(i)), "a carved block is zero")
		checkSlab(t, a, i)
	}
	for range 3 {
		_, ok := a.Carve()
		require.False(t, ok, "carve past the limit")
	}
	assert.Equal(t, n, a.Carved(), "a failed Carve consumes nothing")
	assert.Equal(t, 1, a.Slabs())

	checkBlocks(t, a, n)
	// Every block lies inside the one slab, back to back.
	base := uintptr(unsafe.Pointer(unsafe.SliceData(a.Block(0))))
	for i := range uint32(n) {
		got := uintptr(unsafe.Pointer(unsafe.SliceData(a.Block(i))))
		require.Equal(t, base+uintptr(i)*bs, got, "address of block %d", i)
	}
	mem := *a.slabs[0].Load()
	require.Equal(t, base, uintptr(unsafe.Pointer(unsafe.SliceData(mem))))
	require.Equal(t, n*bs, len(mem))
}

// TestLimitedGeometry checks that a limited arena of any size, up to the
// largest, is one slab holding every block at its own index: the slab
// arithmetic that unlimited arenas use must give slab 0 for all of them.
func TestLimitedGeometry(t *testing.T) {
	check := func(t *testing.T, a *Arena, n uint64) {
		t.Helper()
		for _, i := range []uint64{0, n / 2, n - 1} {
			k, pos := a.Locate(uint32(i))
			require.Equal(t, [2]int{0, int(i)}, [2]int{k, pos}, "Locate(%d) of %d blocks", i, n)
		}
		require.Equal(t, n, uint64(a.SlabBlocks(0)), "slab 0 of %d blocks", n)
		for k := 1; k < maxSlabs; k++ {
			require.Equal(t, 0, a.SlabBlocks(k), "slab %d of %d blocks", k, n)
		}
	}
	for _, n := range []int{1, 2, 3, 4, 5, 1000, 1024, 1025} {
		check(t, New(1, n), uint64(n))
	}
	// The largest limited arena would take 4 GiB even with 1-byte blocks,
	// so give a small one the geometry New gives it (MaxBlocks blocks,
	// B0 = 1<<32); nothing here touches memory.
	a := New(1, 1)
	a.limit, a.capacity, a.b0shift = MaxBlocks, MaxBlocks, 32
	check(t, a, MaxBlocks)
}

// checkSlab checks that block i lies in Slab at its position, and that
// Slab holds the whole slab.
func checkSlab(t *testing.T, a *Arena, i uint32) {
	t.Helper()
	k, pos := a.Locate(i)
	mem := a.Slab(k)
	require.Equal(t, a.SlabBlocks(k)*a.BlockSize(), len(mem), "Slab(%d) holds slab %d", k, k)
	require.Same(t, unsafe.SliceData(a.Block(i)), &mem[pos*a.BlockSize()], "block %d in Slab(%d)", i, k)
}

func TestAppendDoesNotReachNeighbour(t *testing.T) {
	for _, a := range []*Arena{New(8, 4), New(8, 0)} {
		i, _ := a.Carve()
		j, _ := a.Carve()
		fill(a, j)
		b := append(a.Block(i), 0xAA) // must reallocate: len == cap
		assert.NotSame(t, &a.Block(i)[0], &b[0])
		assert.Equal(t, pattern(j, 0), a.Block(j)[0], "neighbour untouched (limit %d)", a.Limit())
	}
}

// slabStarts returns the first block index of every slab the arena can ever
// have, plus the total, by summing SlabBlocks: a reference for SlabOf that
// does not reuse its formula.
func slabStarts(a *Arena) []uint64 {
	starts := []uint64{0}
	for k := 0; a.SlabBlocks(k) > 0; k++ {
		starts = append(starts, starts[k]+uint64(a.SlabBlocks(k)))
	}
	return starts
}

func TestUnlimited(t *testing.T) {
	const bs, b0 = 4096, 64 // 256 KiB / 4096
	a := New(bs, 0)
	require.Equal(t, 0, a.Slabs(), "no slab before the first Carve")
	for k := range 10 {
		require.Equal(t, b0<<k, a.SlabBlocks(k), "slab %d", k)
	}

	// Fill the first block, to check it survives growth.
	i, ok := a.Carve()
	require.True(t, ok)
	require.Equal(t, uint32(0), i)
	require.Equal(t, 1, a.Slabs())
	fill(a, 0)
	first := unsafe.SliceData(a.Block(0))

	const n = b0*(1+2+4+8) + 1 // one block into slab 4
	starts := slabStarts(a)
	for want := uint32(1); want < n; want++ {
		i, ok := a.Carve()
		require.True(t, ok)
		require.Equal(t, want, i)
		k := a.SlabOf(i)
		require.True(t, starts[k] <= uint64(i) && uint64(i) < starts[k+1], "block %d in slab %d [%d, %d)", i, k, starts[k], starts[k+1])
		lk, pos := a.Locate(i)
		require.Equal(t, k, lk, "Locate(%d) slab", i)
		require.Equal(t, int(uint64(i)-starts[k]), pos, "Locate(%d) position", i)
		checkSlab(t, a, i)
		require.Equal(t, k+1, a.Slabs(), "slabs after carving block %d", i)
		require.True(t, isZero(a.Block(i)), "a carved block is zero")
	}
	require.Equal(t, 5, a.Slabs())
	require.Equal(t, n, a.Carved())

	assert.Same(t, first, unsafe.SliceData(a.Block(0)), "block 0 did not move")
	assert.Equal(t, pattern(0, bs-1), a.Block(0)[bs-1], "block 0 kept its data across growth")
	checkBlocks(t, a, n)

	// Blocks of one slab are contiguous, so a slab is a single allocation.
	for i := uint32(1); i < n; i++ {
		if a.SlabOf(i) == a.SlabOf(i-1) {
			prev := uintptr(unsafe.Pointer(unsafe.SliceData(a.Block(i - 1))))
			cur := uintptr(unsafe.Pointer(unsafe.SliceData(a.Block(i))))
			require.Equal(t, prev+bs, cur, "block %d follows block %d", i, i-1)
		}
	}
}

func TestFirstSlabBlocks(t *testing.T) {
	for _, tt := range []struct{ blockSize, b0 int }{
		{1, 1 << 18},
		{3, 1 << 17},     // 87382 -> 131072
		{3000, 128},      // 87.4 -> 128
		{4096, 64},       // exact
		{100000, 4},      // 2.6 -> 4
		{1<<18 - 1, 2},   // just over 1 -> 2
		{1 << 18, 1},     // exact
		{1 << 20, 1},     // less than 1 -> 1
		{math.MaxInt, 1}, // no overflow in the ceiling
	} {
		assert.Equal(t, tt.b0, New(tt.blockSize, 0).SlabBlocks(0), "blockSize %d", tt.blockSize)
	}
}

func TestGeometry(t *testing.T) {
	type geometry struct {
		blockSize uint64 // uint64, so that 64-bit rows compile on 32-bit
		total     uint64 // blocks the arena can ever hold
		slabs     int
		last      uint64 // blocks in the last slab
	}
	var tests []geometry
	if strconv.IntSize == 64 {
		tests = []geometry{
			// B0 = 1<<18: slabs 0..13 hold 1<<32 - 1<<18 blocks, slab 14 is
			// truncated to the 1<<18 - 1 blocks left below MaxBlocks.
			{1, MaxBlocks, 15, 1<<18 - 1},
			{4096, MaxBlocks, 27, 1<<6 - 1},
			// B0 = 1: 32 whole slabs sum to exactly MaxBlocks.
			{1 << 20, MaxBlocks, 32, 1 << 31},
			// Capped by int, not MaxBlocks: 1<<23 - 1 blocks of 1<<40 bytes.
			{1 << 40, 1<<23 - 1, 23, 1 << 22},
			{math.MaxInt64, 1, 1, 1},
		}
	} else {
		tests = []geometry{
			{1, math.MaxInt32, 14, 1<<18 - 1},
			{4096, 1<<19 - 1, 14, 1<<6 - 1},
			{math.MaxInt32, 1, 1, 1},
		}
	}
	for _, tt := range tests {
		t.Run(strconv.FormatUint(tt.blockSize, 10), func(t *testing.T) {
			a := New(int(tt.blockSize), 0)
			starts := slabStarts(a)
			require.Len(t, starts, tt.slabs+1)
			assert.Equal(t, tt.total, starts[tt.slabs], "total blocks")
			assert.Equal(t, tt.last, uint64(a.SlabBlocks(tt.slabs-1)), "last slab")
			for _, k := range []int{-1, tt.slabs, maxSlabs, math.MaxInt} {
				assert.Equal(t, 0, a.SlabBlocks(k), "slab %d", k)
			}
			b0 := uint64(a.SlabBlocks(0))
			for k := range tt.slabs {
				lo, hi := starts[k], starts[k+1]-1
				require.Equal(t, k, a.SlabOf(uint32(lo)), "first block of slab %d", k)
				require.Equal(t, k, a.SlabOf(uint32(hi)), "last block of slab %d", k)
				_, j := a.Locate(uint32(hi))
				require.Equal(t, int(hi-lo), j, "position of the last block of slab %d", k)
				require.Equal(t, b0*(1<<k-1), lo, "start of slab %d", k)
			}
			// Everything stays in bounds of the slab table.
			require.Less(t, a.SlabOf(MaxBlocks-1), maxSlabs)
		})
	}
}

func TestUnlimitedCap(t *testing.T) {
	// Reaching MaxBlocks for real takes gigabytes, so lower the cap of a
	// fresh arena instead: every method derives the geometry from
	// capacity, and nothing has been allocated yet.
	a := New(1<<16, 0) // B0 = 4
	a.capacity = 10    // slab 0: 4 blocks, slab 1: 6 of 8 (truncated)
	assert.Equal(t, []uint64{0, 4, 10}, slabStarts(a))
	for want := range uint32(10) {
		i, ok := a.Carve()
		require.True(t, ok)
		require.Equal(t, want, i)
	}
	_, ok := a.Carve()
	require.False(t, ok, "carve past the cap")
	assert.Equal(t, 10, a.Carved())
	assert.Equal(t, 2, a.Slabs())
	assert.Len(t, *a.slabs[1].Load(), 6<<16, "the last slab is allocated truncated")
	checkBlocks(t, a, 10)
}

func TestBlockSizeOne(t *testing.T) {
	t.Run("limited", func(t *testing.T) {
		a := New(1, 1000)
		for range 1000 {
			_, ok := a.Carve()
			require.True(t, ok)
		}
		_, ok := a.Carve()
		require.False(t, ok)
		checkBlocks(t, a, 1000)
	})
	t.Run("unlimited", func(t *testing.T) {
		a := New(1, 0)
		const n = 1<<18 + 1 // one block into slab 1
		for want := range uint32(n) {
			if i, ok := a.Carve(); !ok || i != want {
				require.Failf(t, "bad carve", "Carve() = %d, %v; want %d, true", i, ok, want)
			}
		}
		require.Equal(t, 2, a.Slabs())
		checkBlocks(t, a, n)
	})
}

func TestLargeBlock(t *testing.T) {
	const bs = 1 << 20
	a := New(bs, 0)
	require.Equal(t, 1, a.SlabBlocks(0))
	for want := range uint32(7) { // slabs of 1, 2 and 4 blocks
		i, ok := a.Carve()
		require.True(t, ok)
		require.Equal(t, want, i)
		require.Equal(t, bits.Len32(i+1)-1, a.SlabOf(i))
	}
	require.Equal(t, 3, a.Slabs())
	checkBlocks(t, a, 7)

	l := New(bs, 3)
	for range 3 {
		_, ok := l.Carve()
		require.True(t, ok)
	}
	_, ok := l.Carve()
	require.False(t, ok)
	checkBlocks(t, l, 3)
}

// carveConcurrently carves from a with 8 goroutines, each up to quota blocks
// (or until Carve fails), while 4 others take each carved index, call Block
// and fill the block, and one more calls Block on already-carved indices
// throughout. Carver g carves runs of up to g%3+1 blocks, with Carve for
// runs of one and CarveN for longer ones. It returns every index carved.
func carveConcurrently(t *testing.T, a *Arena, quota int) []uint32 {
	const carvers, writers = 8, 4
	carvedc := make(chan uint32, 256)
	results := make([][]uint32, carvers)
	done := make(chan struct{})

	var carve sync.WaitGroup
	for g := range carvers {
		carve.Add(1)
		go func() {
			defer carve.Done()
			for len(results[g]) < quota {
				want := min(g%3+1, quota-len(results[g]))
				var first uint32
				k, ok := 1, false
				if want == 1 {
					first, ok = a.Carve()
				} else {
					first, k, ok = a.CarveN(want)
				}
				if !ok {
					return
				}
				if k < 1 || k > want {
					t.Errorf("CarveN(%d) carved %d blocks", want, k)
					return
				}
				for i := first; i < first+uint32(k); i++ {
					// The carver's own Block must see the slab its
					// Carve may have just published.
					if b := a.Block(i); len(b) != a.BlockSize() {
						t.Errorf("Block(%d) has len %d", i, len(b))
					}
					results[g] = append(results[g], i)
					carvedc <- i
				}
			}
		}()
	}
	var work sync.WaitGroup
	for range writers {
		work.Add(1)
		go func() {
			defer work.Done()
			for i := range carvedc {
				fill(a, i)
			}
		}()
	}
	work.Add(1)
	go func() {
		defer work.Done()
		// Block reads the slab table while Carve grows it. Any index below
		// Carved() is valid: the CAS that carved it followed the load of
		// avail that published its slab.
		for j := 0; ; j++ {
			select {
			case <-done:
				return
			default:
			}
			if n := a.Carved(); n > 0 {
				// Alternate between the newest block, most likely in a
				// slab just published, and an older one.
				i := uint32(n - 1)
				if j%2 == 1 {
					i = uint32(j*7919) % uint32(n)
				}
				if b := a.Block(i); len(b) != a.BlockSize() {
					t.Errorf("Block(%d) has len %d", i, len(b))
				}
			}
		}
	}()
	carve.Wait()
	close(carvedc)
	close(done)
	work.Wait()

	all := slices.Concat(results...)
	slices.Sort(all)
	for k, i := range all {
		require.Equal(t, uint32(k), i, "indices must be exactly 0..n-1, each once")
	}
	require.Equal(t, len(all), a.Carved())
	return all
}

func TestCarveN(t *testing.T) {
	t.Run("limited", func(t *testing.T) {
		a := New(8, 12)
		for _, want := range []struct {
			n, first, k int
		}{{5, 0, 5}, {1, 5, 1}, {4, 6, 4}, {5, 10, 2}} {
			i, k, ok := a.CarveN(want.n)
			require.True(t, ok, "CarveN(%d)", want.n)
			require.Equal(t, []int{want.first, want.k}, []int{int(i), k}, "CarveN(%d): first block and count", want.n)
		}
		require.Equal(t, 12, a.Carved())
		_, k, ok := a.CarveN(3)
		assert.False(t, ok, "the arena is full")
		assert.Equal(t, 0, k)
		assert.Equal(t, 12, a.Carved(), "a failed CarveN consumes nothing")
		checkBlocks(t, a, 12)
	})
	t.Run("unlimited", func(t *testing.T) {
		a := New(4096, 0)
		b0 := a.SlabBlocks(0)
		i, k, ok := a.CarveN(b0 - 3)
		require.True(t, ok)
		require.Equal(t, []int{0, b0 - 3}, []int{int(i), k})
		// The run stops where slab 0 ends rather than allocate slab 1.
		i, k, ok = a.CarveN(10)
		require.True(t, ok)
		require.Equal(t, []int{b0 - 3, 3}, []int{int(i), k})
		require.Equal(t, 1, a.Slabs(), "carving ahead allocates no slab")
		// Now slab 0 is used up, so CarveN allocates slab 1.
		i, k, ok = a.CarveN(10)
		require.True(t, ok)
		require.Equal(t, []int{b0, 10}, []int{int(i), k})
		require.Equal(t, 2, a.Slabs())
		require.Equal(t, b0+10, a.Carved())
		checkBlocks(t, a, b0+10)
	})
	t.Run("TryCarveN", func(t *testing.T) {
		a := New(4096, 0)
		b0 := a.SlabBlocks(0)
		_, _, ok := a.TryCarveN(5)
		require.False(t, ok, "an unlimited arena with no slab yet")
		require.Equal(t, 0, a.Slabs(), "TryCarveN allocates no slab")
		_, _, ok = a.CarveN(3)
		require.True(t, ok)
		i, k, ok := a.TryCarveN(b0)
		require.True(t, ok)
		require.Equal(t, []int{3, b0 - 3}, []int{int(i), k}, "the rest of slab 0")
		_, _, ok = a.TryCarveN(1)
		require.False(t, ok, "slab 0 is carved up")
		require.Equal(t, 1, a.Slabs())
		require.Equal(t, b0, a.Carved(), "a failed TryCarveN consumes nothing")

		l := New(8, 3) // limited: TryCarveN is CarveN
		i, k, ok = l.TryCarveN(5)
		require.True(t, ok)
		require.Equal(t, []int{0, 3}, []int{int(i), k})
		_, _, ok = l.TryCarveN(1)
		require.False(t, ok)
	})
	t.Run("n < 1", func(t *testing.T) {
		a := New(8, 4)
		for _, n := range []int{0, -1, math.MinInt} {
			assert.PanicsWithValue(t, "slab: CarveN: n must be positive, got "+strconv.Itoa(n), func() { a.CarveN(n) })
			assert.PanicsWithValue(t, "slab: TryCarveN: n must be positive, got "+strconv.Itoa(n), func() { a.TryCarveN(n) })
		}
		assert.Equal(t, 0, a.Carved())
	})
}

func TestConcurrentCarve(t *testing.T) {
	t.Run("limited", func(t *testing.T) {
		const n = 1 << 13
		a := New(16, n)
		got := carveConcurrently(t, a, n) // every carver could take them all
		require.Len(t, got, n)
		_, ok := a.Carve()
		require.False(t, ok)
		verifyBlocks(t, a, n) // the writers filled every block
	})
	t.Run("limited, contended end", func(t *testing.T) {
		// Small arenas, so that carvers often race for the last blocks.
		for range 200 {
			a := New(1, 32)
			require.Len(t, carveConcurrently(t, a, 32), 32)
			require.Equal(t, 32, a.Carved(), "no overshoot")
		}
	})
	t.Run("unlimited", func(t *testing.T) {
		const quota = 64 * 63 / 8 // 4032 blocks: slabs 0..5 of 64<<k
		a := New(4096, 0)
		got := carveConcurrently(t, a, quota)
		require.Len(t, got, 8*quota)
		require.Equal(t, 6, a.Slabs())
		verifyBlocks(t, a, 8*quota)
	})
}

var sink []byte

func BenchmarkBlockLimited(b *testing.B) {
	const n = 1024
	a := New(4096, n)
	for range n {
		a.Carve()
	}
	b.ReportAllocs()
	b.ResetTimer()
	var s []byte
	for i := 0; i < b.N; i++ {
		s = a.Block(uint32(i) & (n - 1))
	}
	sink = s
}

func BenchmarkBlockUnlimited(b *testing.B) {
	const n = 1024 // slabs 0..4, the last one partly carved
	a := New(4096, 0)
	for range n {
		a.Carve()
	}
	b.ReportAllocs()
	b.ResetTimer()
	var s []byte
	for i := 0; i < b.N; i++ {
		s = a.Block(uint32(i) & (n - 1))
	}
	sink = s
}

func BenchmarkCarve(b *testing.B) {
	// Block size 1 keeps the reservation at b.N bytes; Carve never touches
	// block memory, so only address space is used.
	b.Run("limited", func(b *testing.B) {
		a := New(1, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, ok := a.Carve(); !ok {
				b.Fatal("arena full")
			}
		}
	})
	b.Run("unlimited", func(b *testing.B) {
		a := New(1, 0) // includes the amortized cost of growth
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, ok := a.Carve(); !ok {
				b.Fatal("arena full")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		a := New(1, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok := a.Carve(); !ok {
					b.Error("arena full")
					return
				}
			}
		})
	})
}
