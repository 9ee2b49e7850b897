//go:build !linux

package bench

import "testing"

// newColdFloor skips: the cold floor gives its pages back with
// madvise(MADV_DONTNEED), which this bench only calls on Linux.
func newColdFloor(tb testing.TB, _ int) func() roundTrip {
	tb.Skip("floor-cold is Linux only")
	return nil
}
