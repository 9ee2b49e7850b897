//go:build unix && !linux && !race && !bytespool_heaparena

// This file holds what the mmap backend does on systems other than Linux.

package slab

// mapNoReserve is 0: the flag is Linux's.
const mapNoReserve = 0

// discard does nothing and reports false: elsewhere MADV_DONTNEED is only
// a hint, after which the pages need not read as zeros.
func discard([]byte) bool { return false }
