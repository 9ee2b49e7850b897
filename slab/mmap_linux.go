//go:build !race && !bytespool_heaparena

// This file holds what the mmap backend does differently on Linux.

package slab

import "syscall"

// mapNoReserve maps memory without charging it against the commit limit,
// so that a large cap costs address space, not commit.
const mapNoReserve = syscall.MAP_NORESERVE

// discard gives the pages of b back to the system and reports whether it
// did. MADV_DONTNEED on private anonymous memory frees the pages at once,
// and they read as zeros when next touched.
func discard(b []byte) bool {
	return syscall.Madvise(b, syscall.MADV_DONTNEED) == nil
}
