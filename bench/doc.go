// Package bench compares bytespool with the buffers, pools and pipes a Go
// user would pick instead. It holds only benchmarks and the tests that
// check every contender moves the right bytes; see README.md and run.sh.
//
// It is its own module so that users of bytespool never download the
// peers.
package bench
