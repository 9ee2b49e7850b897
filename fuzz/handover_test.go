package fuzz

import (
	"fmt"
	"testing"

	"github.com/zjj/bytespool"
)

// Header of FuzzHandOver: block size, and the maxLen of each Bytes.
const (
	hhBlockSize = iota
	hhMaxLenA
	hhMaxLenB
	hhLen
)

// Ops of FuzzHandOver, from op.kind()%hopCount. Bit 0 of op.aux() picks
// the Bytes an op works on; for hopHandTo, bit 1 picks the one it writes
// to, which may be the same.
const (
	hopWrite = iota
	hopRead
	hopReadByte
	hopReadFrom
	hopHandTo
	hopWriteTo
	hopReset
	hopClose
	hopCount
)

// FuzzHandOver runs a script of operations on two Bytes of one unlimited
// pool, WriteTo from either to either (a hand-over of blocks, or a Bytes
// written to itself) among them, and checks every result, the data, Len
// and the pool's BlocksInUse against two bytesModels. The pool is
// unlimited so that no write waits for the other Bytes' blocks.
func FuzzHandOver(f *testing.F) {
	addSeeds(f, handOverSeeds)
	f.Fuzz(runHandOver)
}

// runHandOver is the body of FuzzHandOver.
func runHandOver(t *testing.T, data []byte) {
	in := newInput(data, hhLen, 64)
	h := in.head
	bs := blockSizeFor(h[hhBlockSize])
	p, err := bytespool.New(bytespool.Config{BlockSize: bs})
	if err != nil {
		t.Fatalf("New(BlockSize %d): %v", bs, err)
	}
	var bufs [2]*bytespool.Bytes
	var models [2]*bytesModel
	for i, sel := range []byte{h[hhMaxLenA], h[hhMaxLenB]} {
		maxLen := maxLenFor(sel, bs)
		bufs[i], models[i] = p.NewBytes(maxLen), newBytesModel(bs, 0, maxLen)
	}
	s := newScript(t, fmt.Sprintf("pool: BlockSize %d, unlimited; Bytes 0 maxLen %d, Bytes 1 maxLen %d", bs, models[0].maxLen, models[1].maxLen))
	names := [2]string{"0.", "1."}

	for i := 0; in.ops > 0; i++ {
		o := in.next()
		n := sizeFor(o.Size, bs)
		x := int(o.aux() & 1)
		b, m, name := bufs[x], models[x], names[x]
		switch o.kind() % hopCount {
		case hopWrite:
			src := pattern(uint32(i), n)
			s.op("%sWrite(%d bytes)", name, n)
			got, err := b.Write(src)
			want, werr := m.Write(src)
			s.check("Write", int64(got), err, int64(want), werr)
		case hopRead:
			s.read(name, b, m, n)
		case hopReadByte:
			s.readByte(name, b, m)
		case hopReadFrom:
			s.readFrom(name, b, m, pattern(uint32(i), n))
		case hopHandTo:
			y := int(o.aux() >> 1 & 1)
			s.op("%sWriteTo(%d)", name, y)
			got, err := b.WriteTo(bufs[y])
			want, werr := m.HandTo(models[y])
			s.check("WriteTo", got, err, want, werr)
		case hopWriteTo:
			s.writeTo(name, b, m)
		case hopReset:
			s.op("%sReset()", name)
			b.Reset()
			m.Reset()
		default:
			s.op("%sFree()", name)
			b.Free()
			m.Close()
		}
		for j := range bufs {
			s.checkLen(names[j], bufs[j], models[j])
		}
		if got, want := p.Stats().BlocksInUse, models[0].Blocks()+models[1].Blocks(); got != want {
			s.fail("after the last op: Stats().BlocksInUse = %d; want %d (blocks %v and %v)", got, want, models[0].blocks, models[1].blocks)
		}
	}
	s.log()

	// What is left reads back intact, then Free returns everything.
	for j, b := range bufs {
		s.drain(names[j], b, models[j])
		b.Free()
	}
	if st := p.Stats(); st.BlocksInUse != 0 || st.Waiters != 0 {
		s.fail("after Free: Stats %+v; want BlocksInUse 0, Waiters 0", st)
	}
}
