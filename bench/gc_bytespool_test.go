package bench

import (
	"testing"

	"github.com/zjj/bytespool"
)

func init() {
	gcPeers = append([]gcPeer{{"bytespool", holdBytespool}}, gcPeers...)
}

// holdBytespool holds the data in 256 Bytes of 1 MiB each, from a pool
// capped at exactly 256 MiB.
func holdBytespool(b *testing.B) func() {
	const each = 1 << 20
	p := bytespool.NewBytesPool(gcHeld, blockSize)
	src := payload(each, 0)
	held := make([]*bytespool.Bytes, gcHeld/each)
	for i := range held {
		held[i] = p.NewBytes(0)
		if _, err := held[i].Write(src); err != nil {
			b.Fatal(err)
		}
	}
	return func() {
		for _, buf := range held {
			buf.Free()
		}
		clear(held)
	}
}
