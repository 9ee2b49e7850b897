// Package fuzz holds the native Go fuzz targets of bytespool. It has no
// exported API: everything lives in its _test.go files. See README.md.
//
// Each target splits its input into a few header bytes, read directly, that
// pick the shape of the run (block size, pool cap, maxLen, goroutines, close
// variant), and a body that github.com/google/gofuzz decodes into a script
// of operations, which the target runs against an exact model.
package fuzz
