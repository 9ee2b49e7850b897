//go:build linux

package bench

import (
	"syscall"
	"testing"
)

// newColdFloor returns the floor of Stream2MiB (setupFloor) through a
// buffer mapped from the system whose pages are given back
// (madvise MADV_DONTNEED, as Trim does) before every op, untimed: each op
// faults them in again, zero-filled. It is the least an op whose memory is
// not resident can cost (BenchmarkFirstTouch's floor-cold).
func newColdFloor(tb testing.TB, size int) func() roundTrip {
	buf, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = syscall.Munmap(buf) })
	op := func(src, dst []byte, chunk int) error {
		for off := 0; off < len(src); off += chunk {
			copy(buf[off:off+chunk], src[off:off+chunk])
		}
		for off := 0; off < len(dst); off += chunk {
			copy(dst[off:off+chunk], buf[off:off+chunk])
		}
		return nil
	}
	return func() roundTrip {
		if err := syscall.Madvise(buf, syscall.MADV_DONTNEED); err != nil {
			tb.Fatal(err)
		}
		return op
	}
}
