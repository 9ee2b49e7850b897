//go:build 386 || arm || mips || mipsle

package bytespool

// bytespool is for 64-bit platforms: its pools, its rings (package ring)
// and its semaphore (package park) keep 64-bit counters that are updated
// atomically, at offsets that 32-bit platforms do not align to 8 bytes,
// where such updates panic. This file turns that panic at run time into
// an error at build time.
var _ = bytespoolNeedsA64BitPlatform
