package fuzz

import (
	"encoding/binary"
	"fmt"

	gofuzz "github.com/google/gofuzz"
)

// An input is a fuzz input split into a fixed header, read byte by byte,
// and a body that gofuzz decodes into ops.
//
// gofuzz draws every integer field with two Uint32 calls on its rand.Rand,
// and its byte source feeds each call with the next 8 bytes of the body
// (big-endian; Uint32 keeps the top 4 of them). A body is therefore: 8 bytes
// that seed gofuzz's fallback source, then 16 bytes per field, the value
// sitting in bytes 8..12 of those 16. The number of ops is set by the body's
// length, so no op is ever drawn from the fallback source.
type input struct {
	head []byte
	f    *gofuzz.Fuzzer
	ops  int // ops left in the body
}

// op is one step of a script. Code's low byte picks the operation, its high
// byte is an auxiliary value (goroutine, fill seed, flags); Size is decoded
// with sizeFor.
type op struct {
	Code uint16
	Size uint16
}

func (o op) kind() byte { return byte(o.Code) }
func (o op) aux() byte  { return byte(o.Code >> 8) }

const (
	fieldBytes = 16
	opBytes    = 2 * fieldBytes
	seedBytes  = 8
)

func newInput(data []byte, headLen, maxOps int) *input {
	head := make([]byte, headLen)
	copy(head, data)
	var body []byte
	if len(data) > headLen {
		body = data[headLen:]
	}
	in := &input{head: head, f: gofuzz.NewFromGoFuzz(body)}
	if len(body) > seedBytes {
		in.ops = min(maxOps, (len(body)-seedBytes)/opBytes)
	}
	return in
}

// next decodes the next op; the caller checks in.ops first.
func (in *input) next() op {
	var o op
	in.f.Fuzz(&o)
	in.ops--
	return o
}

// all decodes every remaining op.
func (in *input) all() []op {
	ops := make([]op, 0, in.ops)
	for in.ops > 0 {
		ops = append(ops, in.next())
	}
	return ops
}

// encode is the inverse of newInput+all, for writing seeds.
func encode(head []byte, ops []op) []byte {
	out := append([]byte(nil), head...)
	out = append(out, make([]byte, seedBytes)...)
	for _, o := range ops {
		out = appendField(out, uint32(o.Code))
		out = appendField(out, uint32(o.Size))
	}
	return out
}

func appendField(b []byte, v uint32) []byte {
	var w [fieldBytes]byte
	binary.BigEndian.PutUint32(w[8:12], v)
	return append(b, w[:]...)
}

// Size encodings (see sizeFor).
func small(n int) uint16 { // 0..15
	if n < 0 || n > 15 {
		panic(fmt.Sprint("small size out of range: ", n))
	}
	return uint16(n)
}

func blocks(k, d int) uint16 { // k*bs+d, k 0..3, d -8..7, at least 0
	if k < 0 || k > 3 || d < -8 || d > 7 {
		panic(fmt.Sprint("blocks size out of range: ", k, d))
	}
	return 1<<14 | uint16(k)<<4 | uint16(d+8)
}

func bytesN(n int) uint16 { // 0..511
	if n < 0 || n > 511 {
		panic(fmt.Sprint("bytes size out of range: ", n))
	}
	return 3<<14 | uint16(n)
}

// sizeFor decodes a size relative to the block size bs: tiny sizes, sizes
// within 8 bytes of a multiple of bs (the exact-fit cases), sizes up to four
// blocks, and sizes up to 511 bytes.
func sizeFor(s uint16, bs int) int {
	switch s >> 14 {
	case 0:
		return int(s & 15)
	case 1:
		return max(0, int(s>>4&3)*bs+int(s&15)-8)
	case 2:
		return int(s&0x3fff) % (4*bs + 1)
	default:
		return int(s & 0x1ff)
	}
}

// pattern fills a slice of n bytes that depends on seed, so that the data
// of different writes differ.
func pattern(seed uint32, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B1 + 0x7F4A7C15
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// blockSizes are the block sizes a header byte below 128 picks.
var blockSizes = []int{1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64, 100, 127, 256, 1000, 4095, 4096, 8192, 17, 33}

// blockSizeFor decodes a block size in 1..8192.
func blockSizeFor(b byte) int {
	if b < 128 {
		return blockSizes[int(b)%len(blockSizes)]
	}
	return 1 + int(b-128)*8191/127
}
