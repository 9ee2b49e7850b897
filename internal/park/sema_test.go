package park

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/atomic"
)

var errAbort = errors.New("test: aborted")

// acquire takes n units as the pool's writers do: from shard 0 at once if
// it can, else by queuing and waiting.
func acquire(s *Sema, ctx context.Context, n uint64, owner any) error {
	if s.TryAcquire(n, 0) {
		return nil
	}
	return s.Wait(ctx, s.Enqueue(n, owner))
}

// goAcquire starts acquire(s, ctx, n, owner) in a goroutine.
func goAcquire(s *Sema, ctx context.Context, n uint64, owner any) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- acquire(s, ctx, n, owner) }()
	return ch
}

// queue starts an acquire and waits until it is queued (Waiting()==want).
func queue(t *testing.T, s *Sema, ctx context.Context, n uint64, owner any, want int) <-chan error {
	t.Helper()
	ch := goAcquire(s, ctx, n, owner)
	require.Eventually(t, func() bool { return s.Waiting() == want || len(ch) > 0 },
		waitTimeout, time.Millisecond)
	require.Len(t, ch, 0, "acquire(%d) returned instead of queuing", n)
	return ch
}

// checkIdle checks that s is back to size free units and an empty queue.
func checkIdle(t *testing.T, s *Sema, size uint64) {
	t.Helper()
	assert.Equal(t, size, s.Available())
	assert.Equal(t, 0, s.Waiting())
	assert.Equal(t, uint32(0), s.queued.Load(), "queued is clear once the queue is empty")
	s.mu.Lock()
	assert.Nil(t, s.head)
	assert.Nil(t, s.tail)
	s.mu.Unlock()
}

func TestSemaInit(t *testing.T) {
	var s Sema
	s.Init(0, 1)
	assert.Equal(t, uint64(0), s.Available())
	assert.False(t, s.TryAcquire(1, 0))
	assert.True(t, s.TryAcquire(0, 0))

	var big Sema
	big.Init(1<<63-1, 1)
	assert.Equal(t, uint64(1<<63-1), big.Available())
	for _, n := range []uint64{1 << 63, ^uint64(0)} {
		assert.PanicsWithValue(t, "park: semaphore size out of range", func() {
			var s Sema
			s.Init(n, 1)
		}, "Init(%d)", n)
	}
	for _, shards := range []int{0, -1, 3, 6} {
		assert.PanicsWithValue(t, "park: shards must be a power of two", func() {
			var s Sema
			s.Init(1, shards)
		}, "Init(1, %d)", shards)
	}

	var spread Sema
	spread.Init(10, 4)
	assert.Equal(t, uint64(10), spread.Available())
	for i, want := range []uint64{4, 2, 2, 2} {
		assert.Equal(t, want, spread.counts[i].n.Load(), "shard %d", i)
	}
}

// TestSemaStealsInBulk: a TryAcquire whose shard is dry takes half of
// another shard's units, keeps the surplus in its own shard for the next
// calls, and only then looks further.
func TestSemaStealsInBulk(t *testing.T) {
	var s Sema
	s.Init(40, 2) // 20 per shard
	require.True(t, s.TryAcquire(20, 0))
	require.True(t, s.TryAcquire(1, 0), "shard 0 is dry: steal from shard 1")
	assert.Equal(t, uint64(10), s.counts[1].n.Load(), "half of shard 1 was taken")
	assert.Equal(t, uint64(9), s.counts[0].n.Load(), "the surplus stays in shard 0")
	for range 9 {
		require.True(t, s.TryAcquire(1, 0))
	}
	assert.Equal(t, uint64(10), s.counts[1].n.Load(), "the next 9 came from shard 0's stock")
	require.True(t, s.TryAcquire(8, 0), "more than half is missing: take what is missing")
	assert.Equal(t, uint64(2), s.counts[1].n.Load())
	assert.Equal(t, uint64(0), s.counts[0].n.Load())
	assert.False(t, s.TryAcquire(3, 0), "2 units left in all")
	assert.Equal(t, uint64(2), s.Available(), "a failed steal gives back what it took")
	s.Release(1, 1)
	s.counts[0].n.Store(1)
	s.counts[1].n.Store(2)
	require.True(t, s.TryAcquire(3, 0), "1 unit of its own and 2 stolen")
	assert.Equal(t, uint64(0), s.Available())
	s.Release(40, 1)
	checkIdle(t, &s, 40)
}

// TestSemaShards checks that a TryAcquire gathers units from other shards
// when its own has too few, gives them back when all shards together have
// too few, and that a queued waiter collects units released into any
// shard.
func TestSemaShards(t *testing.T) {
	var s Sema
	s.Init(8, 4) // 2 per shard
	require.True(t, s.TryAcquire(2, 1))
	assert.Equal(t, uint64(0), s.counts[1].n.Load(), "taken from its own shard")
	require.True(t, s.TryAcquire(5, 1), "gathered from shards 2, 3 and 0")
	assert.Equal(t, uint64(1), s.Available())
	assert.False(t, s.TryAcquire(2, 0), "1 unit left in all")
	assert.Equal(t, uint64(1), s.Available(), "a failed gather gives back what it took")
	s.Release(7, 2)
	checkIdle(t, &s, 8)

	require.True(t, s.TryAcquire(8, 3))
	ch := queue(t, &s, context.Background(), 5, nil, 1)
	s.Release(2, 1)
	s.Release(2, 3)
	assert.Equal(t, 1, s.Waiting(), "granted with 4 of 5 units")
	assert.Equal(t, uint64(0), s.Available(), "the head keeps what it collected")
	assert.False(t, s.TryAcquire(1, 0), "a newcomer does not overtake the head")
	s.Release(2, 0)
	require.NoError(t, awaitErr(t, "the queued acquire", ch))
	assert.Equal(t, uint64(1), s.Available())
	s.Release(5+2, 2)
	checkIdle(t, &s, 8)
}

func TestSemaTryAcquireRelease(t *testing.T) {
	var s Sema
	s.Init(10, 1)
	assert.True(t, s.TryAcquire(4, 0))
	assert.Equal(t, uint64(6), s.Available())
	assert.False(t, s.TryAcquire(7, 0))
	assert.Equal(t, uint64(6), s.Available(), "a failed TryAcquire takes nothing")
	assert.True(t, s.TryAcquire(6, 0))
	assert.Equal(t, uint64(0), s.Available())
	assert.False(t, s.TryAcquire(1, 0))
	s.Release(3, 0)
	assert.Equal(t, uint64(3), s.Available())
	s.Release(7, 0)
	assert.Equal(t, uint64(10), s.Available())
	assert.True(t, s.TryAcquire(10, 0))
	s.Release(10, 0)
	checkIdle(t, &s, 10)
	n, _ := s.Waits()
	assert.Equal(t, uint64(0), n, "no call waited")
}

func TestSemaAcquireFastPath(t *testing.T) {
	var s Sema
	s.Init(5, 1)
	within(t, "acquire with units free", func() {
		assert.NoError(t, acquire(&s, context.Background(), 5, nil))
	})
	assert.Equal(t, uint64(0), s.Available())
	s.Release(5, 0)
	n, _ := s.Waits()
	assert.Equal(t, uint64(0), n)
	checkIdle(t, &s, 5)
}

// While anyone is queued, TryAcquire fails even if the units are there: a
// newcomer must not take what the head of the queue is waiting for.
func TestSemaNewcomerDoesNotOvertake(t *testing.T) {
	var s Sema
	s.Init(10, 1)
	require.True(t, s.TryAcquire(8, 0))
	ch := queue(t, &s, context.Background(), 5, nil, 1)
	assert.Equal(t, uint64(0), s.Available(), "the head has collected the 2 free units")
	assert.False(t, s.TryAcquire(1, 0), "TryAcquire overtook a queued waiter")

	s.Release(8, 0)
	assert.NoError(t, awaitErr(t, "the queued acquire", ch))
	assert.Equal(t, uint64(5), s.Available())
	assert.True(t, s.TryAcquire(1, 0), "the queue is empty again")
	s.Release(6, 0)
	checkIdle(t, &s, 10)
	n, d := s.Waits()
	assert.Equal(t, uint64(1), n)
	assert.Positive(t, d)
}

func TestSemaFIFO(t *testing.T) {
	var s Sema
	s.Init(10, 1)
	require.True(t, s.TryAcquire(10, 0))
	needs := []uint64{5, 3, 1, 1}
	chs := make([]<-chan error, len(needs))
	for i, n := range needs {
		chs[i] = queue(t, &s, context.Background(), n, nil, i+1)
	}
	granted := func() []int {
		var g []int
		for i, ch := range chs {
			if len(ch) > 0 {
				g = append(g, i)
			}
		}
		return g
	}
	// Grants happen inside Release, so the queue is settled on return;
	// the granted goroutines then report in their own time.
	expect := func(waiting int, done ...int) {
		t.Helper()
		assert.Equal(t, waiting, s.Waiting())
		require.Eventually(t, func() bool { return len(granted()) == len(done) }, waitTimeout, time.Millisecond)
		assert.Equal(t, done, granted())
	}

	s.Release(1, 0) // 1 free: the head needs 5; the 1-unit waiter behind must not go
	expect(4)
	s.Release(3, 0) // 4 free
	expect(4)
	s.Release(1, 0) // 5 free: the head goes, 0 left
	expect(3, 0)
	s.Release(3, 0) // the second (3) goes
	expect(2, 0, 1)
	s.Release(2, 0) // the third and the fourth (1 each) go, 0 left
	expect(0, 0, 1, 2, 3)
	assert.Equal(t, uint64(0), s.Available())
	for i, ch := range chs {
		assert.NoError(t, <-ch, "waiter %d", i)
	}
	s.Release(5+3+1+1, 0)
	checkIdle(t, &s, 10)
}

func TestSemaCancelledHeadLetsNextGo(t *testing.T) {
	var s Sema
	s.Init(10, 1)
	require.True(t, s.TryAcquire(10, 0))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := queue(t, &s, ctx, 8, nil, 1)
	b := queue(t, &s, context.Background(), 1, nil, 2)
	s.Release(1, 0)
	assert.Equal(t, 2, s.Waiting(), "B overtook A")
	assert.Len(t, b, 0)

	cancel()
	assert.ErrorIs(t, awaitErr(t, "A", a), context.Canceled)
	assert.NoError(t, awaitErr(t, "B, once A gave up", b))
	assert.Equal(t, 0, s.Waiting())
	assert.Equal(t, uint64(0), s.Available(), "A holds nothing, B holds 1")
	s.Release(9+1, 0)
	checkIdle(t, &s, 10)
}

func TestSemaCancelledMiddleWaiter(t *testing.T) {
	var s Sema
	s.Init(4, 1)
	require.True(t, s.TryAcquire(4, 0))
	ctx, cancel := context.WithCancel(context.Background())
	a := queue(t, &s, context.Background(), 2, nil, 1)
	b := queue(t, &s, ctx, 2, nil, 2)
	c := queue(t, &s, context.Background(), 2, nil, 3)
	cancel()
	assert.ErrorIs(t, awaitErr(t, "B", b), context.Canceled)
	assert.Equal(t, 2, s.Waiting())
	s.Release(4, 0)
	assert.NoError(t, awaitErr(t, "A", a))
	assert.NoError(t, awaitErr(t, "C", c))
	assert.Equal(t, uint64(0), s.Available())
	s.Release(4, 0)
	checkIdle(t, &s, 4)
}

func TestSemaDeadline(t *testing.T) {
	var s Sema
	s.Init(3, 1)
	require.True(t, s.TryAcquire(3, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var err error
	within(t, "acquire with a deadline", func() { err = acquire(&s, ctx, 1, nil) })
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 0, s.Waiting())
	assert.Equal(t, uint64(0), s.Available())
	s.Release(3, 0)
	checkIdle(t, &s, 3)

	// A done context does not stop an acquire that need not wait.
	done, c := context.WithCancel(context.Background())
	c()
	assert.NoError(t, acquire(&s, done, 2, nil))
	// But one that would wait returns its error at once.
	within(t, "acquire with a done context", func() { err = acquire(&s, done, 2, nil) })
	assert.ErrorIs(t, err, context.Canceled)
	s.Release(2, 0)
	checkIdle(t, &s, 3)
}

func TestSemaAbort(t *testing.T) {
	var s Sema
	s.Init(10, 1)
	require.True(t, s.TryAcquire(6, 0)) // 4 free
	x, y := new(int), new(int)
	a := queue(t, &s, context.Background(), 5, x, 1)
	b := queue(t, &s, context.Background(), 3, y, 2) // would fit, but queues behind A
	c := queue(t, &s, context.Background(), 5, x, 3)
	d := queue(t, &s, context.Background(), 2, y, 4)

	s.Abort(new(int), errAbort) // no such owner: nothing happens
	assert.Equal(t, 4, s.Waiting())

	s.Abort(x, errAbort)
	assert.ErrorIs(t, awaitErr(t, "A", a), errAbort)
	assert.ErrorIs(t, awaitErr(t, "C", c), errAbort)
	// With A gone, B (3 of the 4 free) goes at once; D (2) waits for 1 more.
	assert.NoError(t, awaitErr(t, "B", b))
	assert.Equal(t, 1, s.Waiting())
	assert.Len(t, d, 0)
	assert.Equal(t, uint64(0), s.Available(), "D has collected the 1 free unit")
	s.Release(1, 0) // one of the 6 the test holds
	assert.NoError(t, awaitErr(t, "D", d))
	s.Release(5+3+2, 0)
	checkIdle(t, &s, 10)

	// Abort with nobody queued is harmless.
	s.Abort(x, errAbort)
	checkIdle(t, &s, 10)
}

// AbortOver aborts only the owner's waiters that ask for more than max, and
// the waiters behind them move up.
func TestSemaAbortOver(t *testing.T) {
	var s Sema
	s.Init(10, 1)
	require.True(t, s.TryAcquire(8, 0)) // 2 free
	x, y := new(int), new(int)
	a := queue(t, &s, context.Background(), 4, x, 1)
	b := queue(t, &s, context.Background(), 3, y, 2) // another owner's: kept
	c := queue(t, &s, context.Background(), 2, x, 3) // not over max: kept
	d := queue(t, &s, context.Background(), 5, x, 4)

	s.AbortOver(x, 2, errAbort)
	assert.ErrorIs(t, awaitErr(t, "A", a), errAbort)
	assert.ErrorIs(t, awaitErr(t, "D", d), errAbort)
	assert.Equal(t, 2, s.Waiting(), "B and C stay queued")
	s.Release(1, 0)
	assert.NoError(t, awaitErr(t, "B", b), "B, the head once A left, gets the 2 free and the 1 released")
	assert.Len(t, c, 0)
	s.Release(2, 0)
	assert.NoError(t, awaitErr(t, "C", c))
	s.Release(5+3+2, 0)
	checkIdle(t, &s, 10)
}

// Many goroutines acquire random amounts with random short deadlines while
// another aborts them at random: no unit is ever handed out twice (the
// total held never passes the size) and none is lost (all come back).
func TestSemaStress(t *testing.T) {
	iters := 2000
	if testing.Short() {
		iters = 200
	}
	withProcs(t, func(t *testing.T) {
		for _, shards := range []int{1, 4} {
			t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
				stressSema(t, shards, iters)
			})
		}
	})
}

// stressSema is TestSemaStress over a Sema of shards shards; each worker
// takes from and releases into its own shard, as the pool's writers do.
func stressSema(t *testing.T, shards, iters int) {
	{
		const (
			size    = 20
			workers = 16
		)
		var s Sema
		s.Init(size, shards)
		var held atomic.Int64
		owners := make([]*int, workers)
		for i := range owners {
			owners[i] = new(int)
		}
		var grants, cancels, aborts atomic.Int64

		stop := make(chan struct{})
		var aborter sync.WaitGroup
		aborter.Add(1)
		go func() {
			defer aborter.Done()
			rng := rand.New(rand.NewPCG(99, 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.Abort(owners[rng.IntN(workers)], errAbort)
				time.Sleep(time.Duration(rng.IntN(100)) * time.Microsecond)
			}
		}()

		var wg sync.WaitGroup
		for g := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 5))
				for range iters {
					n := uint64(1 + rng.IntN(size))
					ctx, cancel := context.Background(), context.CancelFunc(func() {})
					if rng.IntN(3) != 0 {
						ctx, cancel = context.WithTimeout(ctx, time.Duration(rng.IntN(300))*time.Microsecond)
					}
					var err error
					if !s.TryAcquire(n, g) {
						err = s.Wait(ctx, s.Enqueue(n, owners[g]))
					}
					cancel()
					switch {
					case err == nil:
						grants.Inc()
						if h := held.Add(int64(n)); !assert.LessOrEqual(t, h, int64(size), "units handed out twice") {
							return
						}
						if rng.IntN(4) == 0 {
							time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
						}
						held.Sub(int64(n))
						s.Release(n, g)
					case errors.Is(err, context.DeadlineExceeded):
						cancels.Inc()
					case errors.Is(err, errAbort):
						aborts.Inc()
					default:
						assert.NoError(t, err)
						return
					}
				}
			}()
		}
		within(t, "the workers", wg.Wait)
		close(stop)
		aborter.Wait()
		t.Logf("grants %d, deadlines %d, aborts %d", grants.Load(), cancels.Load(), aborts.Load())
		assert.Equal(t, int64(workers*iters), grants.Load()+cancels.Load()+aborts.Load())
		assert.Positive(t, grants.Load())
		assert.Equal(t, int64(0), held.Load())
		checkIdle(t, &s, size)
	}
}

// Enqueue joins the queue at once, so an Abort between Enqueue and Wait is
// not missed: Wait then returns the Abort's error without waiting.
func TestSemaAbortBetweenEnqueueAndWait(t *testing.T) {
	var s Sema
	s.Init(4, 1)
	require.True(t, s.TryAcquire(4, 0))
	owner := new(int)
	q := s.Enqueue(2, owner)
	assert.Equal(t, 1, s.Waiting())
	s.Abort(owner, errAbort)
	assert.Equal(t, 0, s.Waiting())
	var err error
	within(t, "Wait after Abort", func() { err = s.Wait(context.Background(), q) })
	assert.ErrorIs(t, err, errAbort)
	s.Release(4, 0)
	checkIdle(t, &s, 4)

	// Units free at Enqueue time are granted by Enqueue itself.
	q = s.Enqueue(3, owner)
	assert.Equal(t, 0, s.Waiting())
	assert.Equal(t, uint64(1), s.Available())
	within(t, "Wait on a granted place", func() { err = s.Wait(context.Background(), q) })
	assert.NoError(t, err)
	s.Abort(owner, errAbort) // too late: the units stay granted
	assert.Equal(t, uint64(1), s.Available())
	s.Release(3, 0)
	checkIdle(t, &s, 4)
}
