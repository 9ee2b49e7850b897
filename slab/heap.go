//go:build !unix || race || bytespool_heaparena

// This file is the heap backend: arena memory allocated as []byte on the
// Go heap, for platforms without mmap and for the race detector, which
// does not see memory it did not allocate.

package slab

import (
	"fmt"
	"math"
)

// Mapped reports whether arena memory is mapped from the operating system,
// outside the Go heap (true), or allocated on the Go heap, where it counts
// toward the garbage collector's goal and GOMEMLIMIT (false). See the
// package documentation for when each is used.
const Mapped = false

// reserveUpFront is false: a heap allocation is memory the runtime may
// touch and counts in full toward the heap goal, so a limited arena
// allocates its slabs as carving reaches them, like an unlimited one.
const reserveUpFront = false

// maxReserve is the largest reservation worth asking for. The runtime
// aborts the program, rather than panic, when the system refuses memory
// it asks for, so sizes beyond any address space (1<<47 bytes, the user
// half of the smallest common 64-bit one) are turned down here instead.
const maxReserve = min(math.MaxInt, 1<<47)

// reserve allocates size > 0 bytes of zeroed memory on the Go heap, or
// returns an error wrapping ErrNoMemory if size is more than the heap can
// address.
func reserve(size int) (mem []byte, err error) {
	if size > maxReserve {
		return nil, noMemory(size, errTooLarge)
	}
	defer func() {
		// make panics, recoverably, with "len out of range" for a size
		// beyond the heap's limit.
		if r := recover(); r != nil {
			cause, ok := r.(error)
			if !ok {
				cause = fmt.Errorf("%v", r)
			}
			mem, err = nil, noMemory(size, cause)
		}
	}()
	return make([]byte, size), nil
}

// reserveWords allocates n > 0 zeroed words on the Go heap, for Meta, with
// nothing to give to unreserve.
func reserveWords(n int) (words []uint64, mem []byte, err error) {
	if n > maxReserve/8 {
		return nil, nil, fmt.Errorf("%w: reserving %d words: %w", ErrNoMemory, n, errTooLarge)
	}
	return make([]uint64, n), nil, nil
}

// unreserve does nothing: the garbage collector takes mem once the arena
// drops it.
func unreserve([]byte) {}

// release does nothing and returns 0: heap memory cannot be given back
// block by block.
func release([]byte) int { return 0 }
