package bytespool

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zjj/bytespool/slab"
)

// Tests of where the pool's memory lives, read from /proc/self/status:
// outside the Go heap, given back by Trim, unmapped with the pool.

// procStatus returns a field of /proc/self/status given in kB, in bytes.
func procStatus(t testing.TB, field string) int {
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

func skipUnlessMapped(t *testing.T) {
	if !slab.Mapped {
		t.Skip("the arena is Go heap memory in this build")
	}
}

// churn makes 800 MB of short-lived 8 KiB garbage and returns how many
// collections ran meanwhile and the median of the heap goals it saw (the
// largest swings with the pacing of a loop that only allocates).
func churn() (cycles uint32, goal uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	start := ms.NumGC
	var goals []uint64
	var sink []byte
	for i := range 800 << 20 / 8192 {
		sink = make([]byte, 8192)
		sink[0] = byte(i)
		if i%2048 == 0 {
			runtime.ReadMemStats(&ms)
			goals = append(goals, ms.NextGC)
		}
	}
	runtime.KeepAlive(sink)
	runtime.ReadMemStats(&ms)
	slices.Sort(goals)
	return ms.NumGC - start, goals[len(goals)/2]
}

// A 1 GiB pool holding 1 MiB leaves the garbage collector's goal where it
// is without the pool: the arena is not heap.
func TestArenaOutsideGCGoal(t *testing.T) {
	skipUnlessMapped(t)
	if testing.Short() {
		t.Skip("800 MB of garbage")
	}
	runtime.GC()
	baseCycles, baseGoal := churn()

	p, err := New(Config{MaxMemory: 1 << 30})
	require.NoError(t, err)
	b := p.NewBytes(0)
	writeAll(t, b, fill(1<<20, 1))
	runtime.GC()
	cycles, goal := churn()
	b.Free()
	runtime.KeepAlive(p)

	t.Logf("without the pool: %d collections, heap goal %d MiB; with it: %d, %d MiB", baseCycles, baseGoal>>20, cycles, goal>>20)
	assert.LessOrEqual(t, float64(goal), 1.1*float64(baseGoal), "heap goal with the pool")
	assert.GreaterOrEqual(t, float64(cycles), 0.5*float64(baseCycles), "collections with the pool")
}

// Trim gives back the pages of freed blocks: resident memory falls by at
// least 90% of what a pool that held 256 MiB freed, and the pool works as
// before, with blocks that come back zero.
func TestTrimGivesMemoryBack(t *testing.T) {
	skipUnlessMapped(t)
	for _, zero := range []bool{false, true} {
		const size = 256 << 20
		p, err := New(Config{MaxMemory: size, ZeroOnFree: zero})
		require.NoError(t, err)
		checkNoLeak(t, p)
		b := p.NewBytes(0)
		data := bytes.Repeat([]byte{0xA5}, size)
		writeAll(t, b, data)
		data = nil
		b.Free()
		runtime.GC() // the 256 MiB slice goes, so VmRSS moves only with the arena

		before := procStatus(t, "VmRSS")
		released := p.Trim()
		after := procStatus(t, "VmRSS")
		assert.GreaterOrEqual(t, released, size/10*9, "bytes Trim reports")
		assert.GreaterOrEqual(t, before-after, size/10*9, "resident bytes given back (VmRSS %d MiB -> %d MiB)", before>>20, after>>20)
		assert.Equal(t, uint64(released), p.Stats().TrimmedBytes)
		assert.Equal(t, 0, p.Stats().BlocksInUse)

		// The blocks come back zero, and hold new data intact.
		c := p.NewBytes(0)
		require.NoError(t, c.WriteByte(1))
		blk := c.st.c.head
		assert.True(t, bytes.Equal(p.arena.Block(blk)[1:], make([]byte, p.blockSize-1)), "a trimmed block comes back zero")
		more := fill(3<<20, 7)
		writeAll(t, c, more)
		got := readAll(t, c)
		assert.Equal(t, byte(1), got[0])
		assert.Equal(t, more, got[1:])
		c.Free()
		requireAllFree(t, p)
	}
}

// Trim runs while writers, readers and pipes use the pool: no data is lost
// or changed, and no block is released while held (a held block would
// read back as zeros).
func TestTrimConcurrent(t *testing.T) {
	skipUnlessMapped(t)
	p, err := New(Config{MaxMemory: 4 << 20})
	require.NoError(t, err)
	checkNoLeak(t, p)
	rounds := 300
	if testing.Short() {
		rounds = 50
	}
	stop := make(chan struct{})
	var trims sync.WaitGroup
	trims.Add(1)
	go func() {
		defer trims.Done()
		for {
			select {
			case <-stop:
				return
			default:
				p.Trim()
				runtime.Gosched()
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				b := p.NewBytes(0)
				data := fill(1+(i*7919+g*104729)%(64<<10), byte(i+g))
				if _, err := b.Write(data); err != nil {
					t.Error(err)
					return
				}
				got, err := readAllErr(b)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("goroutine %d round %d: data changed (err %v)", g, i, err)
					return
				}
				b.Free()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range rounds / 10 {
			r, w := p.NewPipe(32 << 10)
			data := fill(256<<10, byte(i))
			go func() {
				_, _ = w.Write(data)
				w.Close()
			}()
			var out bytes.Buffer
			if _, err := r.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
				t.Errorf("pipe round %d: data changed (err %v)", i, err)
			}
			r.Close()
		}
	}()
	wg.Wait()
	close(stop)
	trims.Wait()
}

// readAllErr drains b, for goroutines that must not call require.
func readAllErr(b *Bytes) ([]byte, error) {
	var out bytes.Buffer
	_, err := out.ReadFrom(b)
	return out.Bytes(), err
}

// Pools made and dropped one after another give their address space back:
// a cleanup unmaps each dropped pool's arena.
func TestDroppedPoolsUnmap(t *testing.T) {
	skipUnlessMapped(t)
	const gib = 1 << 30
	start := procStatus(t, "VmSize")
	for i := range 40 {
		dropPool(t, gib, byte(i))
		for range 2 {
			runtime.GC() // the pool, then its cleanup
		}
	}
	eventually(t, func() bool {
		runtime.GC()
		return procStatus(t, "VmSize")-start < 512<<20
	}, "VmSize did not come back: 40 dropped pools of 1 GiB each leave their mappings")
}

// dropPool makes a pool of size bytes, uses it a little and drops it.
//
//go:noinline
func dropPool(t *testing.T, size int, seed byte) {
	p, err := New(Config{MaxMemory: size})
	require.NoError(t, err)
	b := p.NewBytes(0)
	data := fill(1<<20, seed)
	writeAll(t, b, data)
	require.Equal(t, data, readAll(t, b))
	b.Free()
	require.GreaterOrEqual(t, p.Stats().ArenaBytes, size)
}

// childEnv names the test a child process runs (see inChild).
const childEnv = "BYTESPOOL_TEST_CHILD"

// inChild runs the named test in a child process with the environment
// variable childEnv set to it, and returns the child's output and error.
// The test checks childEnv to know which side it is on.
func inChild(t *testing.T) ([]byte, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	return cmd.CombinedOutput()
}

// A pool of 64 TiB is an error or a working pool, never a crash: the child
// that makes it must exit normally.
func TestHugePoolNeverCrashes(t *testing.T) {
	if os.Getenv(childEnv) == t.Name() {
		p, err := New(Config{MaxMemory: 64 << 40})
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.Contains(t, err.Error(), "MaxMemory")
			t.Logf("an error: %v", err)
			return
		}
		b := p.NewBytes(0)
		data := fill(1<<20, 3)
		writeAll(t, b, data)
		require.Equal(t, data, readAll(t, b))
		b.Free()
		t.Logf("a working pool")
		return
	}
	out, err := inChild(t)
	require.NoError(t, err, "the child crashed:\n%s", out)
	assert.Contains(t, string(out), "PASS")
}

// An unlimited pool whose next slab the system refuses fails the write
// that needed it with ErrPoolTooSmall, and goes on working: the child
// lowers its address space limit, so that a large write needs more.
func TestRefusedGrowthFailsTheWrite(t *testing.T) {
	skipUnlessMapped(t)
	if os.Getenv(childEnv) == t.Name() {
		p, err := New(Config{})
		require.NoError(t, err)
		b := p.NewBytes(0)
		writeAll(t, b, fill(1<<20, 1))
		src := make([]byte, 512<<20) // before the limit: it is not the pool's
		var old syscall.Rlimit
		require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_AS, &old))
		lim := syscall.Rlimit{Cur: uint64(procStatus(t, "VmSize")) + 256<<20, Max: old.Max}
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_AS, &lim))
		c := p.NewBytes(0)
		_, err = c.Write(src)
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_AS, &old))
		require.ErrorIs(t, err, ErrPoolTooSmall)
		require.True(t, errors.Is(err, slab.ErrNoMemory), "%v", err)
		assert.Equal(t, 0, c.Len(), "the failed write wrote nothing")
		// The pool goes on: what b holds is intact, and a write that
		// fits the address space now succeeds.
		assert.Equal(t, fill(1<<20, 1), readAll(t, b))
		writeAll(t, c, fill(64<<20, 2))
		assert.Equal(t, fill(64<<20, 2), readAll(t, c))
		b.Free()
		c.Free()
		assert.Equal(t, 0, p.Stats().BlocksInUse)
		return
	}
	out, err := inChild(t)
	require.NoError(t, err, "the child failed:\n%s", out)
	assert.Contains(t, string(out), "PASS")
}

// New does no work per block: a pool of 1<<28 blocks of one byte costs a
// few small allocations, not gigabytes of free rings.
func TestNewCostsNothingPerBlock(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	p, err := New(Config{MaxMemory: 256 << 20, BlockSize: 1})
	require.NoError(t, err)
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "bytes New allocated")
	b := p.NewBytes(0)
	writeAll(t, b, []byte("small blocks work"))
	assert.Equal(t, []byte("small blocks work"), readAll(t, b))
	b.Free()
}
