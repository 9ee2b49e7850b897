package bytespool

import "testing"

// In-package versions of bench/'s two serial buffer workloads, to compare
// a change against its parent without the bench module: Small1KiB makes a
// Bytes, writes 1 KiB, reads it and frees the Bytes; Stream2MiB writes
// 2 MiB into one Bytes in 32 KiB pieces and reads it back likewise.

func benchSmall(b *testing.B, newBytes func() *Bytes) {
	src, dst := fill(1<<10, 1), make([]byte, 1<<10)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		x := newBytes()
		if _, err := x.Write(src); err != nil {
			b.Fatal(err)
		}
		if _, err := x.Read(dst); err != nil {
			b.Fatal(err)
		}
		x.Free()
	}
}

func benchStream(b *testing.B, x *Bytes) {
	const size, chunk = 2 << 20, 32 << 10
	src, dst := fill(chunk, 1), make([]byte, chunk)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		for range size / chunk {
			if _, err := x.Write(src); err != nil {
				b.Fatal(err)
			}
		}
		for range size / chunk {
			if _, err := x.Read(dst); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkSmall1KiB(b *testing.B) {
	p := benchPool(b)
	benchSmall(b, func() *Bytes { return p.NewBytes(0) })
}

func BenchmarkStream2MiB(b *testing.B) {
	benchStream(b, benchPool(b).NewBytes(0))
}
