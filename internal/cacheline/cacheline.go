// Package cacheline holds the padding unit that keeps fields written by
// different cores off each other's cache lines. It is the one place the
// module states a cache line size.
package cacheline

// Size is the padding unit between fields that different cores write, and
// between such a field and the heap objects around it (a full Size of
// padding, since a heap object need not start on a line).
//
// It is 128 bytes, for the reason sync.Pool pads its per-P state to 128:
// 128 is a multiple of the line size of every widespread platform (64
// bytes on x86-64 and most arm64, 128 on Apple's arm64 and on ppc64), and
// x86's adjacent-line prefetcher fetches 64-byte lines in 128-byte pairs,
// so two fields 64 bytes apart can still contend on x86.
const Size = 128
