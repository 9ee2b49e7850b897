package slab

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// procStatus returns a field of /proc/self/status given in kB, in bytes.
func procStatus(t *testing.T, field string) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	require.NoError(t, err)
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, value, ok := strings.Cut(s.Text(), ":")
		if ok && name == field {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), " kB"))
			require.NoError(t, err, "%s: %q", field, value)
			return kb << 10
		}
	}
	require.NoError(t, s.Err())
	require.FailNow(t, "no such field in /proc/self/status", field)
	return 0
}

// TestReleaseRSS checks that Release gives touched memory back: resident
// memory falls by nearly all of it.
func TestReleaseRSS(t *testing.T) {
	if !Mapped {
		t.Skip("the heap backend releases nothing")
	}
	const bs, n = 4096, 1 << 16 // 256 MiB
	a := newArena(t, bs, n)
	carveAll(t, a)
	ones := bytes.Repeat([]byte{0xA5}, bs)
	for i := range uint32(n) {
		copy(a.Block(i), ones)
	}
	before := procStatus(t, "VmRSS")
	require.Equal(t, n*bs, a.Release(0, n))
	after := procStatus(t, "VmRSS")
	assert.GreaterOrEqual(t, before-after, n*bs/10*9, "resident bytes given back (VmRSS %d -> %d)", before, after)
	zero := make([]byte, bs)
	for i := range uint32(n) {
		if !bytes.Equal(a.Block(i), zero) {
			require.Failf(t, "released block not zero", "block %d", i)
		}
	}
	assert.Equal(t, n*bs, a.Reserved(), "released memory stays reserved")
}

// TestFreeUnmaps checks that arenas made and freed one after another do
// not add up in address space, their Meta included.
func TestFreeUnmaps(t *testing.T) {
	if !Mapped {
		t.Skip("the heap backend maps nothing")
	}
	const gib = 1 << 30
	start := procStatus(t, "VmSize")
	for range 40 {
		a, err := New(4096, gib/4096)
		require.NoError(t, err)
		require.GreaterOrEqual(t, procStatus(t, "VmSize")-start, gib-64<<20, "a limited arena maps all of itself")
		carveTo(t, a, 1000) // slabs 0..3
		checkBlocks(t, a, 1000)
		w, err := a.Meta(1 << 20) // 8 MiB, which Free unmaps too
		require.NoError(t, err)
		w[len(w)-1] = 1
		a.Free()
	}
	for range 5 {
		a, err := New(1<<20, 0)
		require.NoError(t, err)
		carveTo(t, a, 1023) // slabs of 1, 2, ... 512 blocks of 1 MiB
		require.Equal(t, 1023<<20, a.Reserved())
		checkBlocks(t, a, 10)
		a.Free()
	}
	end := procStatus(t, "VmSize")
	assert.Less(t, end-start, 256<<20, "VmSize %d -> %d after 45 arenas of 1 GiB were freed", start, end)
}

// TestGrowRefused checks that an unlimited arena whose growth the system
// refuses returns ErrNoMemory, stays as it was, and grows on a later
// CarveN once the system allows it. The child process lowers its address
// space limit (RLIMIT_AS) to make the system refuse.
func TestGrowRefused(t *testing.T) {
	if !Mapped {
		t.Skip("the heap backend cannot be refused without the runtime aborting")
	}
	if os.Getenv("SLAB_CHILD") != t.Name() {
		out := runChild(t, t.Name())
		require.Contains(t, out, "GROW: refused, then grew")
		return
	}
	const mib = 1 << 20
	a := newArena(t, mib, 0) // slabs of 1, 2, 4, ... blocks of 1 MiB
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_AS, &old))
	// Room for slabs 0..7 (255 MiB) and spare for the runtime, but not
	// for slab 8 (256 MiB) as well.
	lim := old
	lim.Cur = uint64(procStatus(t, "VmSize") + 400*mib)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_AS, &lim))
	restored := false
	restore := func() {
		if !restored {
			require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_AS, &old))
			restored = true
		}
	}
	defer restore()

	carveTo(t, a, 255)
	// Blocks of 1 MiB: write and check only the ends of the slabs.
	ends := []uint32{0, 127, 128, 254}
	for _, i := range ends {
		fill(a, i)
	}
	for range 2 {
		i, k, err := a.CarveN(1)
		require.ErrorIs(t, err, ErrNoMemory)
		require.ErrorIs(t, err, syscall.ENOMEM)
		require.Contains(t, err.Error(), "reserving 268435456 bytes")
		require.Equal(t, []int{0, 0}, []int{int(i), k})
		require.Equal(t, 255, a.Carved())
		require.Equal(t, 8, a.Slabs())
		require.Equal(t, 255*mib, a.Reserved())
	}
	restore()
	i, k, err := a.CarveN(1000)
	require.NoError(t, err)
	require.Equal(t, []int{255, 256}, []int{int(i), k})
	require.Equal(t, 9, a.Slabs())
	require.Equal(t, 511*mib, a.Reserved())
	for _, i := range []uint32{255, 510} {
		require.True(t, isZero(a.Block(i)), "block %d is fresh", i)
		fill(a, i)
		ends = append(ends, i)
	}
	for _, i := range ends {
		require.True(t, hasPattern(a, i), "block %d", i)
	}
	t.Log("GROW: refused, then grew")
}
