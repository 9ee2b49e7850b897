package park

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/atomic"
)

// waitTimeout bounds every wait that must end; it only turns a hang (a lost
// wakeup) into a failure.
const waitTimeout = 20 * time.Second

// within runs f and fails the test if it does not return within waitTimeout.
func within(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not return within %v", what, waitTimeout)
	}
}

// goWait starts a waiter: Prepare, then Wait, in a goroutine. It returns
// once Prepare has run, so a Wake after goWait must wake it.
func goWait(e *Event, ctx context.Context) <-chan error {
	ch := make(chan error, 1)
	prepared := make(chan struct{})
	go func() {
		seq := e.Prepare()
		close(prepared)
		ch <- e.Wait(ctx, seq)
	}()
	<-prepared
	return ch
}

func awaitErr(t testing.TB, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not return within %v", what, waitTimeout)
		return nil
	}
}

// sleeping reports whether a goroutine has gone to sleep on e (past the
// spin, into cond.Wait) since the last Wake.
func sleeping(e *Event) bool { return e.word.Load()&hasSleepers != 0 }

// waitSleeping waits until a goroutine sleeps on e, then gives the others
// started with it a moment to reach their sleep too.
func waitSleeping(t testing.TB, e *Event) {
	t.Helper()
	require.Eventually(t, func() bool { return sleeping(e) }, waitTimeout, time.Millisecond, "nobody sleeps on the event")
	time.Sleep(5 * time.Millisecond)
}

// idle checks that no flag is left in the word: nobody announced a wait
// since the last Wake.
func idle(t testing.TB, e *Event) {
	t.Helper()
	assert.Equal(t, uint32(0), e.word.Load()&flags, "flags left in the event word")
}

// withProcs runs f once per GOMAXPROCS value, restoring it afterwards: the
// spin phase only runs with more than one P.
func withProcs(t *testing.T, f func(t *testing.T)) {
	for _, procs := range []int{1, 4} {
		t.Run("GOMAXPROCS="+strconv.Itoa(procs), func(t *testing.T) {
			old := runtime.GOMAXPROCS(procs)
			defer runtime.GOMAXPROCS(old)
			f(t)
		})
	}
}

func TestEventWakeWithNobodyWaitingWritesNothing(t *testing.T) {
	var e Event
	e.Wake()
	e.Wake()
	assert.Equal(t, uint32(0), e.word.Load(), "a Wake with nobody waiting must not write the word")
}

func TestEventWakeAfterPrepareReturnsAtOnce(t *testing.T) {
	withProcs(t, func(t *testing.T) {
		var e Event
		seq := e.Prepare()
		e.Wake()
		within(t, "Wait after Wake", func() {
			assert.NoError(t, e.Wait(context.Background(), seq))
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		within(t, "Wait with a context after Wake", func() {
			assert.NoError(t, e.Wait(ctx, seq))
		})
		idle(t, &e)
	})
}

// A Wake that came before the context ended wins: Wait reports the wake,
// whatever GOMAXPROCS is (with one P there is no spin to notice it first).
func TestEventWakeBeatsLaterCancel(t *testing.T) {
	withProcs(t, func(t *testing.T) {
		var e Event
		seq := e.Prepare()
		e.Wake()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		assert.NoError(t, e.Wait(ctx, seq), "the Wake happened before the context ended")
	})
}

func TestEventParkedWaiterIsWoken(t *testing.T) {
	withProcs(t, func(t *testing.T) {
		for _, cancellable := range []bool{false, true} {
			var e Event
			ctx, cancel := context.WithCancel(context.Background())
			if !cancellable {
				ctx = context.Background()
			}
			ch := goWait(&e, ctx)
			waitSleeping(t, &e)
			assert.Len(t, ch, 0, "Wait returned without a Wake")
			e.Wake()
			assert.NoError(t, awaitErr(t, "the woken waiter", ch))
			idle(t, &e)
			cancel()
		}
	})
}

func TestEventWaitReturnsContextError(t *testing.T) {
	withProcs(t, func(t *testing.T) {
		var e Event

		ctx, cancel := context.WithCancel(context.Background())
		ch := goWait(&e, ctx)
		waitSleeping(t, &e)
		cancel()
		assert.ErrorIs(t, awaitErr(t, "the cancelled waiter", ch), context.Canceled)

		dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer dcancel()
		ch = goWait(&e, dctx)
		assert.ErrorIs(t, awaitErr(t, "the waiter with a deadline", ch), context.DeadlineExceeded)

		// Already done: returns at once.
		done, cancelDone := context.WithCancel(context.Background())
		cancelDone()
		within(t, "Wait with a done context", func() {
			assert.ErrorIs(t, e.Wait(done, e.Prepare()), context.Canceled)
		})

		// The event still works after the cancellations.
		ch = goWait(&e, context.Background())
		waitSleeping(t, &e)
		e.Wake()
		assert.NoError(t, awaitErr(t, "a later waiter", ch))
		idle(t, &e)
	})
}

// Cancelling one waiter wakes only that one; the others keep sleeping.
func TestEventCancelIsPerWaiter(t *testing.T) {
	withProcs(t, func(t *testing.T) {
		var e Event
		ctx, cancel := context.WithCancel(context.Background())
		a := goWait(&e, ctx)
		b := goWait(&e, context.Background())
		waitSleeping(t, &e)
		cancel()
		assert.ErrorIs(t, awaitErr(t, "the cancelled waiter", a), context.Canceled)
		time.Sleep(5 * time.Millisecond)
		assert.Len(t, b, 0, "the other waiter returned without a Wake")
		e.Wake()
		assert.NoError(t, awaitErr(t, "the other waiter", b))
		idle(t, &e)
	})
}

func TestEventWakeBroadcasts(t *testing.T) {
	withProcs(t, func(t *testing.T) {
		const n = 32
		var e Event
		chs := make([]<-chan error, n)
		var cancels []context.CancelFunc
		for i := range chs {
			ctx := context.Background()
			if i%2 == 1 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				cancels = append(cancels, cancel)
			}
			chs[i] = goWait(&e, ctx)
		}
		waitSleeping(t, &e)
		for i, ch := range chs {
			assert.Len(t, ch, 0, "waiter %d returned without a Wake", i)
		}
		e.Wake()
		for i, ch := range chs {
			assert.NoError(t, awaitErr(t, "waiter", ch), "waiter %d", i)
		}
		idle(t, &e)
		for _, c := range cancels {
			c()
		}
	})
}

// Two goroutines hand a turn back and forth through two Events. A lost
// wakeup leaves both asleep and the test times out.
func TestEventPingPongStress(t *testing.T) {
	rounds := 20000
	if testing.Short() {
		rounds = 2000
	}
	withProcs(t, func(t *testing.T) {
		var ev [2]Event
		var turn atomic.Int32
		var wg sync.WaitGroup
		for i := range int32(2) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ctx context.Context = context.Background()
				if i == 1 {
					// One side waits with a context that can end, to
					// cover the AfterFunc path.
					c, cancel := context.WithCancel(context.Background())
					defer cancel()
					ctx = c
				}
				for range rounds {
					for {
						seq := ev[i].Prepare()
						if turn.Load() == i {
							break
						}
						if !assert.NoError(t, ev[i].Wait(ctx, seq)) {
							return
						}
					}
					turn.Store(1 - i)
					ev[1-i].Wake()
				}
			}()
		}
		within(t, "the ping-pong", wg.Wait)
	})
}

// One producer counts up and wakes; many consumers wait for the count to
// reach every value they look for.
func TestEventCounterStress(t *testing.T) {
	steps := 5000
	if testing.Short() {
		steps = 500
	}
	withProcs(t, func(t *testing.T) {
		const consumers = 8
		var e Event
		var count atomic.Int64
		var wg sync.WaitGroup
		for c := range consumers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				if c%2 == 0 {
					cctx, cancel := context.WithCancel(ctx)
					defer cancel()
					ctx = cctx
				}
				// Each consumer waits for every (c+1)-th value.
				for target := int64(c + 1); target <= int64(steps); target += int64(c + 1) {
					for {
						seq := e.Prepare()
						if count.Load() >= target {
							break
						}
						if !assert.NoError(t, e.Wait(ctx, seq)) {
							return
						}
					}
				}
			}()
		}
		for range steps {
			count.Inc()
			e.Wake()
			if count.Load()%64 == 0 {
				runtime.Gosched()
			}
		}
		within(t, "the consumers", wg.Wait)
	})
}
