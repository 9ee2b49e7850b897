//go:build unix && !race && !bytespool_heaparena

// This file is the mmap backend: arena memory mapped from the operating
// system, outside the Go heap.

package slab

import (
	"fmt"
	"math"
	"syscall"
	"unsafe"
)

// Mapped reports whether arena memory is mapped from the operating system,
// outside the Go heap (true), or allocated on the Go heap, where it counts
// toward the garbage collector's goal and GOMEMLIMIT (false). See the
// package documentation for when each is used.
const Mapped = true

// reserveUpFront is set when reserving costs address space only, so that
// New reserves a limited arena whole, in one mapping, and its slabs are
// views into it.
const reserveUpFront = true

// maxReserve is the largest reservation worth asking for: the system
// refuses what it cannot map, with an error.
const maxReserve = math.MaxInt

// pageSize is the unit in which memory is mapped and released.
var pageSize = syscall.Getpagesize()

// reserve maps size > 0 bytes of zeroed memory, or returns an error
// wrapping ErrNoMemory.
func reserve(size int) ([]byte, error) {
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|mapNoReserve)
	if err != nil {
		return nil, noMemory(size, err)
	}
	return mem, nil
}

// reserveWords maps n > 0 zeroed words, for Meta: the words, and the
// mapping to give to unreserve.
func reserveWords(n int) (words []uint64, mem []byte, err error) {
	if n > maxReserve/8 {
		return nil, nil, fmt.Errorf("%w: reserving %d words: %w", ErrNoMemory, n, errTooLarge)
	}
	if mem, err = reserve(n * 8); err != nil {
		return nil, nil, err
	}
	// A mapping starts on a page, so its words are aligned.
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem))), n), mem, nil
}

// unreserve unmaps mem, as returned by reserve. It panics if the system
// refuses, which only a mem that reserve did not return can cause.
func unreserve(mem []byte) {
	if err := syscall.Munmap(mem); err != nil {
		panic(fmt.Sprintf("slab: unmapping %d bytes: %v", len(mem), err))
	}
}

// release gives the whole pages inside b back to the system, which will
// read as zeros when next touched, and returns their size in bytes.
func release(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	ps := uintptr(pageSize)
	lo := (p+ps-1)&^(ps-1) - p
	hi := (p+uintptr(len(b)))&^(ps-1) - p
	if lo >= hi || !discard(b[lo:hi]) {
		return 0
	}
	return int(hi - lo)
}
