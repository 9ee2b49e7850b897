//go:build 386 || arm || mips || mipsle

package ring

// A Ring's positions and slots are 64-bit words updated atomically, at
// offsets that 32-bit platforms do not align to 8 bytes, where such
// updates panic. So the package is for 64-bit platforms, and this file
// makes building it elsewhere an error rather than a panic at run time.
var _ = ringNeedsA64BitPlatform
