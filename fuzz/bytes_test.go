package fuzz

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/zjj/bytespool"
)

// Header of FuzzBytesOps: block size, pool cap, maxLen, and the odd bytes
// of a MaxMemory that is not a multiple of the block size (an error).
const (
	bhBlockSize = iota
	bhCap
	bhMaxLen
	bhExtra
	bhLen
)

// Ops of FuzzBytesOps, from op.kind(): kindClose for 252 and above, else
// kind%9.
const (
	bopWrite = iota
	bopWriteString
	bopWriteByte
	bopRead
	bopReadByte
	bopReadFrom
	bopWriteTo
	bopReset
	bopLen
	bopCount

	kindClose = 252
)

// capFor decodes the pool cap: unlimited, one block, 2..8 blocks, 9..72
// blocks; MaxMemory may carry up to bs-1 extra bytes, which New rejects
// (runBytesOps checks that, then uses the whole blocks).
func capFor(sel, extra byte, bs int) (capBlocks, maxMemory int) {
	switch sel % 4 {
	case 0:
		return 0, 0
	case 1:
		capBlocks = 1
	case 2:
		capBlocks = 2 + int(sel>>2)%7
	default:
		capBlocks = 9 + int(sel>>2)%64
	}
	maxMemory = capBlocks * bs
	if extra&0x80 != 0 {
		maxMemory += int(extra&0x7f) % bs
	}
	return capBlocks, maxMemory
}

// maxLenFor decodes maxLen: none, 1..16, a multiple of bs, or a multiple of
// bs give or take one or two bytes.
func maxLenFor(sel byte, bs int) int {
	switch sel % 4 {
	case 0:
		return 0
	case 1:
		return 1 + int(sel>>2)%16
	case 2:
		return bs * (1 + int(sel>>2)%4)
	default:
		d := []int{-1, 1, -2, 2}[sel>>2&3]
		return max(1, bs*(1+int(sel>>4)%4)+d)
	}
}

// FuzzBytesOps runs a script of operations on one Bytes and checks every
// result, the data, Len and the pool's BlocksInUse against bytesModel.
func FuzzBytesOps(f *testing.F) {
	addSeeds(f, bytesOpsSeeds)
	f.Fuzz(runBytesOps)
}

// runBytesOps is the body of FuzzBytesOps.
func runBytesOps(t *testing.T, data []byte) {
	in := newInput(data, bhLen, 64)
	h := in.head
	bs := blockSizeFor(h[bhBlockSize])
	capBlocks, maxMemory := capFor(h[bhCap], h[bhExtra], bs)
	maxLen := maxLenFor(h[bhMaxLen], bs)

	if maxMemory%bs != 0 {
		_, err := bytespool.New(bytespool.Config{MaxMemory: maxMemory, BlockSize: bs})
		if !errors.Is(err, bytespool.ErrInvalidConfig) || !strings.Contains(err.Error(), "MaxMemory") {
			t.Fatalf("New(MaxMemory %d, BlockSize %d) = %v; want ErrInvalidConfig naming MaxMemory", maxMemory, bs, err)
		}
		maxMemory = capBlocks * bs
	}
	p, err := bytespool.New(bytespool.Config{MaxMemory: maxMemory, BlockSize: bs})
	if err != nil {
		t.Fatalf("New(MaxMemory %d, BlockSize %d): %v", maxMemory, bs, err)
	}
	if st := p.Stats(); st.BlockSize != bs || st.BlocksTotal != capBlocks || st.BlocksInUse != 0 {
		t.Fatalf("fresh pool (MaxMemory %d, BlockSize %d): Stats %+v, want BlockSize %d, BlocksTotal %d, BlocksInUse 0",
			maxMemory, bs, st, bs, capBlocks)
	}
	b := p.NewBytes(maxLen)
	m := newBytesModel(bs, capBlocks, maxLen)
	s := newScript(t, fmt.Sprintf("pool: BlockSize %d, MaxMemory %d (%d blocks), NewBytes(%d)", bs, maxMemory, capBlocks, maxLen))

	for i := 0; in.ops > 0; i++ {
		o := in.next()
		n := sizeFor(o.Size, bs)
		seed := uint32(i)<<8 | uint32(o.aux())
		k := o.kind()
		if k < kindClose {
			k %= bopCount
		}
		switch k {
		case bopWrite, bopWriteString:
			src := pattern(seed, n)
			name := "Write"
			var got int
			var err error
			if k == bopWrite {
				got, err = b.Write(src)
			} else {
				name = "WriteString"
				got, err = b.WriteString(string(src))
			}
			s.op("%s(%d bytes)", name, n)
			want, werr := m.Write(src)
			s.check(name, int64(got), err, int64(want), werr)
		case bopWriteByte:
			c := byte(seed)
			s.op("WriteByte(%#x)", c)
			err := b.WriteByte(c)
			s.note(" = %v", err)
			_, werr := m.Write([]byte{c})
			if !sameErr(err, werr) {
				s.fail("WriteByte = %v; want %v", err, werr)
			}
		case bopRead:
			s.read("", b, m, n)
		case bopReadByte:
			s.readByte("", b, m)
		case bopReadFrom:
			s.readFrom("", b, m, pattern(seed, n))
		case bopWriteTo:
			s.writeTo("", b, m)
		case bopReset:
			s.op("Reset()")
			b.Reset()
			m.Reset()
		case bopLen:
			s.op("Len()")
			got, want := b.Len(), m.Len()
			s.note(" = %d", got)
			if got != want {
				s.fail("Len = %d; want %d", got, want)
			}
		default:
			s.op("Close()")
			err := b.Close()
			s.note(" = %v", err)
			if werr := m.Close(); !sameErr(err, werr) {
				s.fail("Close = %v; want %v", err, werr)
			}
		}
		s.checkLen("", b, m)
		if got, want := p.Stats().BlocksInUse, m.Blocks(); got != want {
			s.fail("after the last op: Stats().BlocksInUse = %d; want %d (blocks %v)", got, want, m.blocks)
		}
		s.note("  [len %d, blocks %v]", m.Len(), m.blocks)
	}
	s.log()

	// Whatever is left reads back intact, then Free returns everything.
	s.drain("", b, m)
	b.Free()
	if st := p.Stats(); st.BlocksInUse != 0 || st.Waiters != 0 {
		s.fail("after Free: Stats %+v; want BlocksInUse 0, Waiters 0", st)
	}
}
