package park

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSemaOldestStartAndPeak: OldestStart names the head's start while
// somebody is queued, and Peak samples the units held as the queue changes
// (here: all of them, while the queued waiter holds the head's place),
// plus what Observe records.
func TestSemaOldestStartAndPeak(t *testing.T) {
	var s Sema
	s.Init(4, 2)
	_, ok := s.OldestStart()
	require.False(t, ok)
	require.Equal(t, uint64(0), s.Peak())

	require.True(t, s.TryAcquire(3, 0))
	require.Equal(t, uint64(0), s.Peak(), "the fast path takes no sample")
	s.Observe(2)
	require.Equal(t, uint64(2), s.Peak())

	before := time.Now()
	q1 := s.Enqueue(2, "a") // 1 free: the head collects it and waits for 1 more
	q2 := s.Enqueue(1, "b")
	start, ok := s.OldestStart()
	require.True(t, ok)
	require.False(t, start.Before(before))
	require.Equal(t, uint64(4), s.Peak(), "3 held and 1 collected by the head")

	s.Abort("a", context.Canceled) // b moves up and gets the unit a gave back
	require.ErrorIs(t, s.Wait(context.Background(), q1), context.Canceled)
	require.NoError(t, s.Wait(context.Background(), q2))
	_, ok = s.OldestStart()
	require.False(t, ok)
	s.Release(4, 0)
	require.Equal(t, uint64(4), s.Peak(), "the peak stays")
}
