package fuzz

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/zjj/bytespool"
)

// Header of FuzzBytesOps: block size, pool cap, maxLen, and the odd bytes
// of a MaxMemory that is not a multiple of the block size.
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
// blocks; MaxMemory may carry up to bs-1 extra bytes, which the pool rounds
// away.
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
	for _, s := range bytesOpsSeeds {
		f.Add(s.data())
	}
	f.Fuzz(runBytesOps)
}

// runBytesOps is the body of FuzzBytesOps.
func runBytesOps(t *testing.T, data []byte) {
	in := newInput(data, bhLen, 64)
	h := in.head
	bs := blockSizeFor(h[bhBlockSize])
	capBlocks, maxMemory := capFor(h[bhCap], h[bhExtra], bs)
	maxLen := maxLenFor(h[bhMaxLen], bs)

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

	trace := []string{fmt.Sprintf("pool: BlockSize %d, MaxMemory %d (%d blocks), NewBytes(%d)", bs, maxMemory, capBlocks, maxLen)}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nscript so far:\n  %s", fmt.Sprintf(format, args...), strings.Join(trace, "\n  "))
	}
	note := func(format string, args ...any) {
		trace[len(trace)-1] += " = " + fmt.Sprintf(format, args...)
	}
	checkN := func(what string, gotN int64, gotErr error, wantN int64, wantErr error) {
		t.Helper()
		note("%d, %v", gotN, gotErr)
		if gotN != wantN || !sameErr(gotErr, wantErr) {
			fail("%s = %d, %v; want %d, %v", what, gotN, gotErr, wantN, wantErr)
		}
	}

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
			trace = append(trace, fmt.Sprintf("%s(%d bytes)", name, n))
			want, werr := m.Write(src)
			checkN(name, int64(got), err, int64(want), werr)
		case bopWriteByte:
			c := byte(seed)
			trace = append(trace, fmt.Sprintf("WriteByte(%#x)", c))
			err := b.WriteByte(c)
			note("%v", err)
			_, werr := m.Write([]byte{c})
			if !sameErr(err, werr) {
				fail("WriteByte = %v; want %v", err, werr)
			}
		case bopRead:
			trace = append(trace, fmt.Sprintf("Read(%d)", n))
			buf := make([]byte, n)
			got, err := b.Read(buf)
			want, werr := m.Read(n)
			checkN("Read", int64(got), err, int64(len(want)), werr)
			if !bytes.Equal(buf[:got], want) {
				fail("Read returned %x; want %x", buf[:got], want)
			}
		case bopReadByte:
			trace = append(trace, "ReadByte()")
			got, err := b.ReadByte()
			note("%#x, %v", got, err)
			want, werr := m.ReadByte()
			if got != want || !sameErr(err, werr) {
				fail("ReadByte = %#x, %v; want %#x, %v", got, err, want, werr)
			}
		case bopReadFrom:
			src := pattern(seed, n)
			trace = append(trace, fmt.Sprintf("ReadFrom(bytes.Reader of %d bytes)", n))
			r := bytes.NewReader(src)
			got, err := b.ReadFrom(r)
			want, left, werr := m.ReadFrom(src)
			checkN("ReadFrom", got, err, want, werr)
			if r.Len() != left {
				fail("ReadFrom left %d bytes of its source unread; want %d", r.Len(), left)
			}
		case bopWriteTo:
			trace = append(trace, "WriteTo(bytes.Buffer)")
			var buf bytes.Buffer
			got, err := b.WriteTo(&buf)
			want, werr := m.WriteTo()
			checkN("WriteTo", got, err, int64(len(want)), werr)
			if !bytes.Equal(buf.Bytes(), want) {
				fail("WriteTo wrote %x; want %x", buf.Bytes(), want)
			}
		case bopReset:
			trace = append(trace, "Reset()")
			b.Reset()
			m.Reset()
		case bopLen:
			trace = append(trace, "Len()")
			got, want := b.Len(), m.Len()
			note("%d", got)
			if got != want {
				fail("Len = %d; want %d", got, want)
			}
		default:
			trace = append(trace, "Close()")
			err := b.Close()
			note("%v", err)
			if werr := m.Close(); !sameErr(err, werr) {
				fail("Close = %v; want %v", err, werr)
			}
		}
		if got, want := b.Len(), m.Len(); got != want {
			fail("after the last op: Len = %d; want %d", got, want)
		}
		if got, want := p.Stats().BlocksInUse, m.Blocks(); got != want {
			fail("after the last op: Stats().BlocksInUse = %d; want %d (blocks %v)", got, want, m.blocks)
		}
		trace[len(trace)-1] += fmt.Sprintf("  [len %d, blocks %v]", m.Len(), m.blocks)
	}
	if os.Getenv("BYTESPOOL_FUZZ_TRACE") != "" {
		t.Logf("script:\n  %s", strings.Join(trace, "\n  "))
	}

	// Whatever is left reads back intact, then Free returns everything.
	if !m.closed {
		var buf bytes.Buffer
		got, err := b.WriteTo(&buf)
		want, _ := m.WriteTo()
		if err != nil || !bytes.Equal(buf.Bytes(), want) {
			fail("final WriteTo = %d, %v, data %x; want %d, nil, data %x", got, err, buf.Bytes(), len(want), want)
		}
	}
	b.Free()
	if st := p.Stats(); st.BlocksInUse != 0 || st.Waiters != 0 {
		fail("after Free: Stats %+v; want BlocksInUse 0, Waiters 0", st)
	}
}
