package slab

import (
	"math"
	"math/bits"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// raceEnabled is set by race_test.go in builds with -race.
var raceEnabled bool

// newArena returns New(blockSize, maxBlocks), failing the test on an
// error, and frees the arena when the test ends.
func newArena(t testing.TB, blockSize, maxBlocks int) *Arena {
	t.Helper()
	a, err := New(blockSize, maxBlocks)
	require.NoError(t, err, "New(%d, %d)", blockSize, maxBlocks)
	t.Cleanup(a.Free)
	return a
}

// carve1 carves one block and fails the test if it cannot.
func carve1(t testing.TB, a *Arena) uint32 {
	t.Helper()
	i, k, err := a.CarveN(1)
	if err != nil || k != 1 {
		require.Failf(t, "CarveN(1) failed", "CarveN(1) = %d, %d, %v", i, k, err)
	}
	return i
}

// carveAll carves every block left, in as few CarveN calls as the slabs
// allow, and returns how many calls it made.
func carveAll(t testing.TB, a *Arena) int {
	t.Helper()
	for calls := 0; ; calls++ {
		_, _, err := a.CarveN(math.MaxInt)
		if err == ErrFull {
			return calls
		}
		require.NoError(t, err)
	}
}

// pow2 returns 1<<k, computed at run time so that tests skipped on 32-bit
// platforms compile there.
func pow2(k int) int { return 1 << k }

// carveTo carves blocks until n are carved, and fails the test if it
// cannot.
func carveTo(t testing.TB, a *Arena, n int) {
	t.Helper()
	for a.Carved() < n {
		_, _, err := a.CarveN(n - a.Carved())
		require.NoError(t, err)
	}
}

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
			require.PanicsWithValue(t, tt.want, func() { _, _ = New(tt.blockSize, tt.maxBlocks) })
		})
	}
}

func TestNewValidEdges(t *testing.T) {
	// Unlimited arenas reserve nothing in New, whatever the block size.
	for _, bs := range []int{1, 4096, math.MaxInt} {
		a := newArena(t, bs, 0)
		assert.Equal(t, bs, a.BlockSize())
		assert.Equal(t, 0, a.Limit())
		assert.Equal(t, 0, a.Slabs())
		assert.Equal(t, 0, a.Carved())
		assert.Equal(t, 0, a.Reserved())
	}
	a := newArena(t, 3, 5)
	assert.Equal(t, 3, a.BlockSize())
	assert.Equal(t, 5, a.Limit())
	assert.Equal(t, 0, a.Slabs(), "no slab is published before the first carve")
	assert.Equal(t, 0, a.Carved())
	if Mapped {
		assert.Equal(t, 15, a.Reserved(), "a mapped limited arena is reserved whole by New")
	} else {
		assert.Equal(t, 0, a.Reserved(), "a heap arena allocates its slabs lazily")
	}
}

// TestBackend checks that the backend is the one the build asks for, where
// the test can tell.
func TestBackend(t *testing.T) {
	if raceEnabled {
		require.False(t, Mapped, "the race detector needs arena memory on the Go heap")
	}
	if runtime.GOOS == "windows" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" || runtime.GOOS == "plan9" {
		require.False(t, Mapped, "no mmap on %s", runtime.GOOS)
	}
}

// TestHeapAccounting checks where the memory of touched blocks is counted:
// not in the Go heap where the arena is mapped, in full where it is not.
func TestHeapAccounting(t *testing.T) {
	const bs, n = 4096, 1 << 14 // 64 MiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a := newArena(t, bs, n)
	carveAll(t, a)
	for k := 0; k < a.Slabs(); k++ {
		s := a.Slab(k)
		for j := range s {
			s[j] = 1
		}
	}
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if Mapped {
		assert.Less(t, grown, int64(8<<20), "mapped blocks are not Go heap")
	} else {
		// Less a margin for garbage of earlier tests collected meanwhile.
		assert.Greater(t, grown, int64(n*bs-8<<20), "heap blocks are Go heap")
		assert.Equal(t, n*bs, a.Reserved())
	}
	runtime.KeepAlive(a)
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

// hasPattern reports whether block i holds its pattern.
func hasPattern(a *Arena, i uint32) bool {
	b := a.Block(i)
	for j := range b {
		if b[j] != pattern(i, j) {
			return false
		}
	}
	return true
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

// addr returns the address of block i.
func addr(a *Arena, i uint32) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(a.Block(i)))) }

func TestLimited(t *testing.T) {
	// B0 = 4: slabs of 4 and 8 blocks, then 8 of 16 (cut short).
	const bs, n = 1 << 16, 20
	a := newArena(t, bs, n)
	starts := slabStarts(a)
	require.Equal(t, []uint64{0, 4, 12, 20}, starts)
	assert.Equal(t, 0, a.SlabBlocks(-1))
	assert.Equal(t, 0, a.Slabs())

	for want := range uint32(n) {
		i := carve1(t, a)
		require.Equal(t, want, i, "indices are handed out in order")
		require.Equal(t, int(want)+1, a.Carved())
		k, pos := a.Locate(i)
		require.True(t, starts[k] <= uint64(i) && uint64(i) < starts[k+1], "block %d in slab %d", i, k)
		require.Equal(t, int(uint64(i)-starts[k]), pos, "Locate(%d) position", i)
		require.Equal(t, k, a.SlabOf(i))
		require.Equal(t, k+1, a.Slabs(), "slabs are published as carving reaches them")
		if Mapped {
			require.Equal(t, n*bs, a.Reserved(), "reserved whole by New")
		} else {
			require.Equal(t, int(starts[k+1])*bs, a.Reserved(), "slabs allocated so far")
		}
		require.True(t, isZero(a.Block(i)), "a carved block is zero")
		checkSlab(t, a, i)
	}
	for range 3 {
		_, k, err := a.CarveN(1)
		require.Equal(t, ErrFull, err, "carve past the limit")
		require.Equal(t, 0, k)
	}
	assert.Equal(t, n, a.Carved(), "a failed CarveN consumes nothing")
	assert.Equal(t, 3, a.Slabs())
	checkBlocks(t, a, n)

	// Blocks are back to back within a slab, and, where the arena is one
	// mapping, across slabs too.
	for i := uint32(1); i < n; i++ {
		if Mapped || a.SlabOf(i) == a.SlabOf(i-1) {
			require.Equal(t, addr(a, i-1)+bs, addr(a, i), "block %d follows block %d", i, i-1)
		}
	}
}

// TestLimitedGeometry checks that a limited arena has the slabs of an
// unlimited one of the same block size, the last cut short at its limit.
func TestLimitedGeometry(t *testing.T) {
	for _, bs := range []int{1, 3000, 4096, 1 << 16, 1 << 20} {
		u := newArena(t, bs, 0)
		b0 := u.SlabBlocks(0)
		for _, n := range []int{1, 2, b0 - 1, b0, b0 + 1, 3 * b0, 3*b0 + 1, 1000*b0 + 7} {
			if n < 1 || n > 1<<30/bs {
				continue // keep the reservation of a mapped arena small
			}
			a := newArena(t, bs, n)
			start := 0
			for k := range maxSlabs {
				want := max(0, min(u.SlabBlocks(k), n-start))
				require.Equal(t, want, a.SlabBlocks(k), "slab %d of %d blocks of %d bytes", k, n, bs)
				start += want
			}
			require.Equal(t, n, start)
			for _, i := range []int{0, n / 2, n - 1} {
				k, pos := a.Locate(uint32(i))
				uk, upos := u.Locate(uint32(i))
				require.Equal(t, [2]int{uk, upos}, [2]int{k, pos}, "Locate(%d) of %d blocks of %d bytes", i, n, bs)
			}
		}
	}
	if strconv.IntSize == 64 {
		// The largest limited arena: with 1-byte blocks, exactly the
		// unlimited geometry. New reserves 4 GiB of address space where
		// the arena is mapped, and nothing on the heap.
		maxBlocks := uint64(MaxBlocks) // a variable: it overflows a 32-bit int
		a := newArena(t, 1, int(maxBlocks))
		u := newArena(t, 1, 0)
		require.Equal(t, slabStarts(u), slabStarts(a))
		require.Len(t, slabStarts(a), 16)
		require.Equal(t, 14, a.SlabOf(MaxBlocks-1))
	}
}

// TestLazyNew checks that New does no work per block: a limited arena of
// 1<<31 one-byte blocks costs only its reservation.
func TestLazyNew(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("2 GiB does not fit a 32-bit address space")
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	a := newArena(t, 1, pow2(31))
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10), "heap allocated by New")
	assert.Equal(t, 0, a.Slabs())
	wantReserved := 0
	if Mapped {
		wantReserved = pow2(31)
	}
	assert.Equal(t, wantReserved, a.Reserved())

	i := carve1(t, a)
	require.Equal(t, uint32(0), i)
	assert.Equal(t, 1, a.Slabs())
	if !Mapped {
		wantReserved = 1 << 18 // slab 0
	}
	assert.Equal(t, wantReserved, a.Reserved())
}

// checkSlab checks that block i lies in Slab at its position, and that
// Slab holds the whole slab.
func checkSlab(t *testing.T, a *Arena, i uint32) {
	t.Helper()
	k, pos := a.Locate(i)
	mem := a.Slab(k)
	require.Equal(t, a.SlabBlocks(k)*a.BlockSize(), len(mem), "Slab(%d) holds slab %d", k, k)
	require.Equal(t, len(mem), cap(mem), "Slab(%d) ends where the slab does", k)
	require.Same(t, unsafe.SliceData(a.Block(i)), &mem[pos*a.BlockSize()], "block %d in Slab(%d)", i, k)
}

func TestAppendDoesNotReachNeighbour(t *testing.T) {
	for _, a := range []*Arena{newArena(t, 8, 4), newArena(t, 8, 0)} {
		i := carve1(t, a)
		j := carve1(t, a)
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
	a := newArena(t, bs, 0)
	require.Equal(t, 0, a.Slabs(), "no slab before the first carve")
	for k := range 10 {
		require.Equal(t, b0<<k, a.SlabBlocks(k), "slab %d", k)
	}

	// Fill the first block, to check it survives growth.
	require.Equal(t, uint32(0), carve1(t, a))
	require.Equal(t, 1, a.Slabs())
	require.Equal(t, b0*bs, a.Reserved())
	fill(a, 0)
	first := unsafe.SliceData(a.Block(0))

	const n = b0*(1+2+4+8) + 1 // one block into slab 4
	starts := slabStarts(a)
	for want := uint32(1); want < n; want++ {
		i := carve1(t, a)
		require.Equal(t, want, i)
		k := a.SlabOf(i)
		require.True(t, starts[k] <= uint64(i) && uint64(i) < starts[k+1], "block %d in slab %d [%d, %d)", i, k, starts[k], starts[k+1])
		lk, pos := a.Locate(i)
		require.Equal(t, k, lk, "Locate(%d) slab", i)
		require.Equal(t, int(uint64(i)-starts[k]), pos, "Locate(%d) position", i)
		checkSlab(t, a, i)
		require.Equal(t, k+1, a.Slabs(), "slabs after carving block %d", i)
		require.Equal(t, int(starts[k+1])*bs, a.Reserved(), "reserved after carving block %d", i)
		require.True(t, isZero(a.Block(i)), "a carved block is zero")
	}
	require.Equal(t, 5, a.Slabs())
	require.Equal(t, n, a.Carved())

	assert.Same(t, first, unsafe.SliceData(a.Block(0)), "block 0 did not move")
	assert.Equal(t, pattern(0, bs-1), a.Block(0)[bs-1], "block 0 kept its data across growth")
	checkBlocks(t, a, n)

	// Blocks of one slab are contiguous, so a slab is a single reservation.
	for i := uint32(1); i < n; i++ {
		if a.SlabOf(i) == a.SlabOf(i-1) {
			require.Equal(t, addr(a, i-1)+bs, addr(a, i), "block %d follows block %d", i, i-1)
		}
	}
}

// Grow publishes one slab at a time, ahead of carving, and says how many
// blocks it added; TryCarveN then carves them without growing.
func TestGrow(t *testing.T) {
	const bs, b0 = 4096, 64
	for _, limit := range []int{0, b0 + 10} {
		a := newArena(t, bs, limit)
		_, _, ok := a.TryCarveN(1)
		require.False(t, ok, "nothing published yet")
		n, err := a.Grow()
		require.NoError(t, err)
		require.Equal(t, b0, n)
		require.Equal(t, b0, a.Published())
		require.Equal(t, 0, a.Carved(), "Grow carves nothing")
		i, k, ok := a.TryCarveN(b0 + 5)
		require.True(t, ok)
		require.Equal(t, uint32(0), i)
		require.Equal(t, b0, k, "TryCarveN stops at the published end")

		n, err = a.Grow()
		require.NoError(t, err)
		if limit == 0 {
			require.Equal(t, 2*b0, n)
		} else {
			require.Equal(t, 10, n, "the last slab is cut short at the limit")
			_, err = a.Grow()
			require.ErrorIs(t, err, ErrFull)
		}
		require.Equal(t, b0+n, a.Published())
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
		assert.Equal(t, tt.b0, newArena(t, tt.blockSize, 0).SlabBlocks(0), "blockSize %d, unlimited", tt.blockSize)
		if tt.blockSize <= 1<<20 {
			// A limited arena of two first slabs' worth has the same B0.
			l := newArena(t, tt.blockSize, 2*tt.b0)
			assert.Equal(t, tt.b0, l.SlabBlocks(0), "blockSize %d, limited", tt.blockSize)
			assert.Equal(t, tt.b0, l.SlabBlocks(1), "blockSize %d, limited, slab 1 cut short", tt.blockSize)
		}
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
			a := newArena(t, int(tt.blockSize), 0)
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
	// capacity, and nothing has been reserved yet.
	a := newArena(t, 1<<16, 0) // B0 = 4
	a.capacity = 10            // slab 0: 4 blocks, slab 1: 6 of 8 (truncated)
	assert.Equal(t, []uint64{0, 4, 10}, slabStarts(a))
	for want := range uint32(10) {
		require.Equal(t, want, carve1(t, a))
	}
	_, _, err := a.CarveN(1)
	require.Equal(t, ErrFull, err, "carve past the cap")
	assert.Equal(t, 10, a.Carved())
	assert.Equal(t, 2, a.Slabs())
	assert.Len(t, a.Slab(1), 6<<16, "the last slab is reserved truncated")
	assert.Equal(t, 10<<16, a.Reserved())
	checkBlocks(t, a, 10)
}

func TestBlockSizeOne(t *testing.T) {
	t.Run("limited", func(t *testing.T) {
		a := newArena(t, 1, 1000)
		for want := range uint32(1000) {
			require.Equal(t, want, carve1(t, a))
		}
		_, _, err := a.CarveN(1)
		require.Equal(t, ErrFull, err)
		checkBlocks(t, a, 1000)
	})
	t.Run("unlimited", func(t *testing.T) {
		a := newArena(t, 1, 0)
		const n = 1<<18 + 1 // one block into slab 1
		for want := range uint32(n) {
			if i, k, err := a.CarveN(1); err != nil || k != 1 || i != want {
				require.Failf(t, "bad carve", "CarveN(1) = %d, %d, %v; want %d, 1, nil", i, k, err, want)
			}
		}
		require.Equal(t, 2, a.Slabs())
		checkBlocks(t, a, n)
	})
}

func TestLargeBlock(t *testing.T) {
	const bs = 1 << 20
	a := newArena(t, bs, 0)
	require.Equal(t, 1, a.SlabBlocks(0))
	for want := range uint32(7) { // slabs of 1, 2 and 4 blocks
		i := carve1(t, a)
		require.Equal(t, want, i)
		require.Equal(t, bits.Len32(i+1)-1, a.SlabOf(i))
	}
	require.Equal(t, 3, a.Slabs())
	checkBlocks(t, a, 7)

	l := newArena(t, bs, 3) // slabs of 1 and 2 blocks
	for want := range uint32(3) {
		require.Equal(t, want, carve1(t, l))
	}
	_, _, err := l.CarveN(1)
	require.Equal(t, ErrFull, err)
	require.Equal(t, 2, l.Slabs())
	checkBlocks(t, l, 3)
}

// carveConcurrently carves from a with 8 goroutines, each up to quota blocks
// (or until the arena is full), while 4 others take each carved index, call
// Block and fill the block, and one more calls Block on already-carved
// indices throughout. Carver g carves runs of up to g%3+1 blocks, and odd
// carvers try TryCarveN before CarveN. It returns every index carved.
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
				var k int
				var err error
				ok := false
				if g%2 == 1 {
					first, k, ok = a.TryCarveN(want)
				}
				if !ok {
					first, k, err = a.CarveN(want)
				}
				if err == ErrFull {
					return
				}
				if err != nil {
					t.Errorf("CarveN(%d): %v", want, err)
					return
				}
				if k < 1 || k > want {
					t.Errorf("CarveN(%d) carved %d blocks", want, k)
					return
				}
				for i := first; i < first+uint32(k); i++ {
					// The carver's own Block must see the slab its
					// CarveN may have just published.
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
		// Block reads the slab table while CarveN grows it. Any index below
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
	t.Run("limited, one slab", func(t *testing.T) {
		a := newArena(t, 8, 12)
		for _, want := range []struct {
			n, first, k int
		}{{5, 0, 5}, {1, 5, 1}, {4, 6, 4}, {5, 10, 2}} {
			i, k, err := a.CarveN(want.n)
			require.NoError(t, err, "CarveN(%d)", want.n)
			require.Equal(t, []int{want.first, want.k}, []int{int(i), k}, "CarveN(%d): first block and count", want.n)
		}
		require.Equal(t, 12, a.Carved())
		i, k, err := a.CarveN(3)
		assert.Equal(t, ErrFull, err, "the arena is full")
		assert.Equal(t, []int{0, 0}, []int{int(i), k})
		assert.Equal(t, 12, a.Carved(), "a failed CarveN consumes nothing")
		checkBlocks(t, a, 12)
	})
	t.Run("limited, several slabs", func(t *testing.T) {
		a := newArena(t, 1<<16, 20) // slabs of 4, 8 and 8 blocks
		for _, want := range []struct {
			first, k, slabs int
		}{{0, 4, 1}, {4, 8, 2}, {12, 8, 3}} {
			i, k, err := a.CarveN(10)
			require.NoError(t, err)
			require.Equal(t, []int{want.first, want.k}, []int{int(i), k}, "a run stops where its slab ends")
			require.Equal(t, want.slabs, a.Slabs())
		}
		_, _, err := a.CarveN(1)
		require.Equal(t, ErrFull, err)
		checkBlocks(t, a, 20)
	})
	t.Run("unlimited", func(t *testing.T) {
		a := newArena(t, 4096, 0)
		b0 := a.SlabBlocks(0)
		i, k, err := a.CarveN(b0 - 3)
		require.NoError(t, err)
		require.Equal(t, []int{0, b0 - 3}, []int{int(i), k})
		// The run stops where slab 0 ends rather than reserve slab 1.
		i, k, err = a.CarveN(10)
		require.NoError(t, err)
		require.Equal(t, []int{b0 - 3, 3}, []int{int(i), k})
		require.Equal(t, 1, a.Slabs(), "carving ahead publishes no slab")
		// Now slab 0 is used up, so CarveN publishes slab 1.
		i, k, err = a.CarveN(10)
		require.NoError(t, err)
		require.Equal(t, []int{b0, 10}, []int{int(i), k})
		require.Equal(t, 2, a.Slabs())
		require.Equal(t, b0+10, a.Carved())
		checkBlocks(t, a, b0+10)
	})
	for _, limit := range []int{0, 1000} {
		t.Run("TryCarveN, limit "+strconv.Itoa(limit), func(t *testing.T) {
			a := newArena(t, 4096, limit)
			b0 := a.SlabBlocks(0)
			reserved := a.Reserved()
			_, _, ok := a.TryCarveN(5)
			require.False(t, ok, "no slab is published yet")
			require.Equal(t, 0, a.Slabs(), "TryCarveN publishes no slab")
			require.Equal(t, reserved, a.Reserved(), "TryCarveN reserves nothing")
			_, _, err := a.CarveN(3)
			require.NoError(t, err)
			i, k, ok := a.TryCarveN(b0)
			require.True(t, ok)
			require.Equal(t, []int{3, b0 - 3}, []int{int(i), k}, "the rest of slab 0")
			_, _, ok = a.TryCarveN(1)
			require.False(t, ok, "slab 0 is carved up")
			require.Equal(t, 1, a.Slabs())
			require.Equal(t, b0, a.Carved(), "a failed TryCarveN consumes nothing")
		})
	}
	t.Run("n < 1", func(t *testing.T) {
		a := newArena(t, 8, 4)
		for _, n := range []int{0, -1, math.MinInt} {
			assert.PanicsWithValue(t, "slab: CarveN: n must be positive, got "+strconv.Itoa(n), func() { _, _, _ = a.CarveN(n) })
			assert.PanicsWithValue(t, "slab: TryCarveN: n must be positive, got "+strconv.Itoa(n), func() { a.TryCarveN(n) })
		}
		assert.Equal(t, 0, a.Carved())
	})
}

func TestConcurrentCarve(t *testing.T) {
	t.Run("limited", func(t *testing.T) {
		const n = 1 << 15 // B0 = 1<<14 for 16-byte blocks: two slabs
		a := newArena(t, 16, n)
		got := carveConcurrently(t, a, n) // every carver could take them all
		require.Len(t, got, n)
		_, _, err := a.CarveN(1)
		require.Equal(t, ErrFull, err)
		require.Equal(t, 2, a.Slabs())
		verifyBlocks(t, a, n) // the writers filled every block
	})
	t.Run("limited, contended end", func(t *testing.T) {
		// Small arenas, so that carvers often race for the last blocks.
		for range 200 {
			a, err := New(1, 32)
			require.NoError(t, err)
			require.Len(t, carveConcurrently(t, a, 32), 32)
			require.Equal(t, 32, a.Carved(), "no overshoot")
			a.Free()
		}
	})
	t.Run("limited, contended growth", func(t *testing.T) {
		// Slabs of 4, 8, 16... blocks of 64 KiB, so that carvers often
		// race to publish the next slab.
		for range 20 {
			a, err := New(1<<16, 60)
			require.NoError(t, err)
			require.Len(t, carveConcurrently(t, a, 60), 60)
			require.Equal(t, 4, a.Slabs())
			a.Free()
		}
	})
	t.Run("unlimited", func(t *testing.T) {
		const quota = 64 * 63 / 8 // 4032 blocks: slabs 0..5 of 64<<k
		a := newArena(t, 4096, 0)
		got := carveConcurrently(t, a, quota)
		require.Len(t, got, 8*quota)
		require.Equal(t, 6, a.Slabs())
		verifyBlocks(t, a, 8*quota)
	})
}

// TestNoMemory checks that reservations beyond any address space are
// errors, and that an unlimited arena whose growth is refused stays as it
// was, and tries again on the next CarveN.
func TestNoMemory(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("needs sizes beyond a 32-bit address space")
	}
	t.Run("limited", func(t *testing.T) {
		a, err := New(pow2(40), 1<<22) // 4 EiB
		require.ErrorIs(t, err, ErrNoMemory)
		require.Nil(t, a)
		require.Contains(t, err.Error(), "reserving 4611686018427387904 bytes")
	})
	t.Run("unlimited", func(t *testing.T) {
		a := newArena(t, pow2(62), 0) // one block, of 4 EiB
		require.Equal(t, []uint64{0, 1}, slabStarts(a))
		for range 2 {
			i, k, err := a.CarveN(1)
			require.ErrorIs(t, err, ErrNoMemory)
			require.Contains(t, err.Error(), "reserving 4611686018427387904 bytes")
			require.Equal(t, []int{0, 0}, []int{int(i), k})
			require.Equal(t, 0, a.Carved())
			require.Equal(t, 0, a.Slabs())
			require.Equal(t, 0, a.Reserved())
			_, _, ok := a.TryCarveN(1)
			require.False(t, ok)
		}
	})
}

// runChild runs the test named name in a child process, with the
// environment variable SLAB_CHILD set to name, and returns its output. A
// test calls it when SLAB_CHILD is not set, and does the child's work when
// it is, so that a crash cannot take the whole test binary down.
func runChild(t *testing.T, name string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v")
	cmd.Env = append(os.Environ(), "SLAB_CHILD="+name)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child process:\n%s", out)
	return string(out)
}

// TestHugeLimited checks that a limited arena of 64 TiB is either refused
// with ErrNoMemory or works, end to end where it is mapped, and never
// crashes the program.
func TestHugeLimited(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("64 TiB does not fit in int")
	}
	bs, n := 1<<16, 1<<30 // not constants: n*bs overflows a 32-bit int
	if os.Getenv("SLAB_CHILD") != t.Name() {
		out := runChild(t, t.Name())
		ok, nomem := strings.Contains(out, "HUGE: works"), strings.Contains(out, "HUGE: no memory")
		require.True(t, ok != nomem, "the child must report exactly one outcome:\n%s", out)
		t.Logf("64 TiB limited arena, Mapped %v: works %v", Mapped, ok)
		return
	}
	a, err := New(bs, n)
	if err != nil {
		require.ErrorIs(t, err, ErrNoMemory)
		require.Contains(t, err.Error(), "reserving 70368744177664 bytes")
		t.Log("HUGE: no memory")
		return
	}
	defer a.Free()
	if !Mapped {
		// The heap backend allocates slabs lazily: carve and use the
		// first one only, since the Go runtime aborts when refused.
		require.Equal(t, 0, a.Reserved())
		i, k, err := a.CarveN(n)
		require.NoError(t, err)
		require.Equal(t, []int{0, 4}, []int{int(i), k})
		require.Equal(t, 4*bs, a.Reserved())
		checkBlocks(t, a, 4)
		t.Log("HUGE: works")
		return
	}
	require.Equal(t, n*bs, a.Reserved())
	// B0 = 4: slabs of 4<<k blocks, 29 of them, the last cut to 4 blocks.
	require.Equal(t, 29, carveAll(t, a))
	require.Equal(t, n, a.Carved())
	require.Equal(t, 29, a.Slabs())
	require.Equal(t, 4, a.SlabBlocks(28))
	for _, i := range []uint32{0, uint32(n / 2), uint32(n - 1)} {
		require.True(t, isZero(a.Block(i)))
		fill(a, i)
		require.True(t, hasPattern(a, i), "block %d", i)
	}
	require.Equal(t, addr(a, 0)+uintptr(n-1)*uintptr(bs), addr(a, uint32(n-1)), "one mapping")
	t.Log("HUGE: works")
}

func TestFree(t *testing.T) {
	for _, limit := range []int{0, 100} {
		a, err := New(4096, limit)
		require.NoError(t, err)
		i, k, err := a.CarveN(70) // two slabs of an unlimited arena
		require.NoError(t, err)
		require.Equal(t, []int{0, 64}, []int{int(i), k})
		_, _, err = a.CarveN(6)
		require.NoError(t, err)
		require.Equal(t, 2, a.Slabs())
		checkBlocks(t, a, 70)

		a.Free()
		assert.Equal(t, 0, a.Reserved())
		assert.Equal(t, 0, a.Slabs())
		_, _, ok := a.TryCarveN(1)
		assert.False(t, ok, "nothing to carve after Free")
		assert.PanicsWithValue(t, "slab: arena used after Free", func() { _, _, _ = a.CarveN(1) })
		a.Free() // idempotent
		assert.Equal(t, 0, a.Reserved())
	}
}

var sink []byte

func BenchmarkBlockLimited(b *testing.B) {
	const n = 1024
	a := newArena(b, 4096, n)
	carveAll(b, a)
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
	a := newArena(b, 4096, 0)
	for range n {
		carve1(b, a)
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
	// Block size 1 keeps the reservation at b.N bytes; carving never
	// touches block memory, so only address space is used.
	b.Run("limited", func(b *testing.B) {
		a := newArena(b, 1, b.N) // includes the amortized cost of publishing
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, _, err := a.CarveN(1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unlimited", func(b *testing.B) {
		a := newArena(b, 1, 0) // includes the amortized cost of growth
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, _, err := a.CarveN(1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		a := newArena(b, 1, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := a.CarveN(1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// releases reports whether Release gives memory back in this build.
const releases = Mapped && runtime.GOOS == "linux"

// wholePages returns the bytes of the whole pages inside [lo, hi), the
// part of a run of memory that Release gives back.
func wholePages(lo, hi uintptr) (plo, phi uintptr) {
	ps := uintptr(os.Getpagesize())
	plo, phi = (lo+ps-1)&^(ps-1), hi&^(ps-1)
	if plo > phi {
		plo = phi
	}
	return plo, phi
}

func TestRelease(t *testing.T) {
	// piece is a run of memory that Release handles at once: all of the
	// range where the arena is one mapping, else its part in each slab.
	type piece struct{ lo, hi uintptr }
	check := func(t *testing.T, a *Arena, first uint32, n, total int, pieces []piece) {
		t.Helper()
		checkBlocks(t, a, total)
		want := 0
		var freed []piece
		for _, p := range pieces {
			lo, hi := wholePages(p.lo, p.hi)
			if releases {
				want += int(hi - lo)
				freed = append(freed, piece{lo, hi})
			}
		}
		require.Equal(t, want, a.Release(first, n), "Release(%d, %d)", first, n)
		for i := range uint32(total) {
			b := a.Block(i)
			for j := range b {
				p := uintptr(unsafe.Pointer(&b[j]))
				wantByte := pattern(i, j)
				for _, f := range freed {
					if f.lo <= p && p < f.hi {
						wantByte = 0
					}
				}
				if b[j] != wantByte {
					require.Failf(t, "wrong byte after Release", "block %d byte %d = %#x, want %#x", i, j, b[j], wantByte)
				}
			}
		}
	}

	t.Run("limited", func(t *testing.T) {
		a := newArena(t, 3000, 20) // one slab; blocks straddle pages
		carveAll(t, a)
		check(t, a, 1, 5, 20, []piece{{addr(a, 1), addr(a, 6)}})
		check(t, a, 19, 1, 20, []piece{{addr(a, 19), addr(a, 19) + 3000}})
		check(t, a, 0, 20, 20, []piece{{addr(a, 0), addr(a, 19) + 3000}})
	})
	t.Run("limited, across slabs", func(t *testing.T) {
		a := newArena(t, 1<<16, 20) // slabs of 4, 8 and 8 blocks
		carveAll(t, a)
		pieces := []piece{{addr(a, 2), addr(a, 3) + 1<<16}, {addr(a, 4), addr(a, 5) + 1<<16}}
		if Mapped {
			pieces = []piece{{addr(a, 2), addr(a, 2) + 4<<16}} // one mapping
		}
		check(t, a, 2, 4, 20, pieces)
	})
	t.Run("unlimited, across slabs", func(t *testing.T) {
		a := newArena(t, 4096, 0) // slabs of 64 and 128 blocks
		_, _, err := a.CarveN(64)
		require.NoError(t, err)
		_, _, err = a.CarveN(100)
		require.NoError(t, err)
		check(t, a, 60, 10, 164, []piece{{addr(a, 60), addr(a, 63) + 4096}, {addr(a, 64), addr(a, 69) + 4096}})
	})
	t.Run("edges", func(t *testing.T) {
		a := newArena(t, 4096, 0)
		_, _, err := a.CarveN(10)
		require.NoError(t, err)
		assert.Equal(t, 0, a.Release(3, 0))
		assert.PanicsWithValue(t, "slab: Release: n must not be negative, got -1", func() { a.Release(3, -1) })
		assert.PanicsWithValue(t, "slab: Release: blocks [5, 11) are not all carved (10 are)", func() { a.Release(5, 6) })
		assert.PanicsWithValue(t, "slab: Release: blocks [4294967295, 4294967296) are not all carved (10 are)",
			func() { a.Release(math.MaxUint32, 1) })
	})
	t.Run("concurrent", func(t *testing.T) {
		// One goroutine releases and rewrites blocks [8, 64) over and
		// over while others write and check blocks [0, 8).
		a := newArena(t, 4096, 64)
		carveAll(t, a)
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 200 {
					for i := uint32(g * 4); i < uint32(g*4+4); i++ {
						fill(a, i)
						if !hasPattern(a, i) {
							t.Errorf("block %d changed under Release of other blocks", i)
							return
						}
					}
				}
			}()
		}
		wantRun := 0
		if releases {
			wantRun = 56 * 4096
		}
		for range 200 {
			for i := uint32(8); i < 64; i++ {
				fill(a, i)
			}
			if got := a.Release(8, 56); got != wantRun {
				t.Errorf("Release(8, 56) = %d, want %d", got, wantRun)
				break
			}
		}
		wg.Wait()
		for i := uint32(8); i < 64; i++ {
			require.Equal(t, releases, isZero(a.Block(i)), "block %d released", i)
		}
	})
}

// TestMeta checks that Meta hands out zeroed, writable words that no other
// call shares, leaves Reserved alone, and panics on a bad size and after
// Free.
func TestMeta(t *testing.T) {
	a := newArena(t, 4096, 1024)
	reserved := a.Reserved()
	var all [][]uint64
	for _, n := range []int{1, 3, 512, 4096, 100_000} {
		w, err := a.Meta(n)
		require.NoError(t, err)
		require.Len(t, w, n)
		assert.Zero(t, uintptr(unsafe.Pointer(&w[0]))%8, "aligned")
		for i := range w {
			require.Zero(t, w[i], "zeroed")
			w[i] = uint64(n)
		}
		all = append(all, w)
	}
	for _, w := range all {
		for i := range w {
			require.Equal(t, uint64(len(w)), w[i], "no two calls share a word")
		}
	}
	assert.Equal(t, reserved, a.Reserved())
	require.PanicsWithValue(t, "slab: Meta: n must be positive, got 0", func() { _, _ = a.Meta(0) })
	b, err := New(4096, 16)
	require.NoError(t, err)
	b.Free()
	require.PanicsWithValue(t, "slab: arena used after Free", func() { _, _ = b.Meta(1) })
}
