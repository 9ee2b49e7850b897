package bench

import (
	"io"

	"github.com/zjj/bytespool"
)

func init() {
	bufferPeers = append([]bufferPeer{{"bytespool", setupBytespool}}, bufferPeers...)
}

// setupBytespool: a 100 MiB pool of 4 KiB blocks; each op is NewBytes,
// Writes, Reads, Free.
func setupBytespool(int) func() roundTrip {
	p := bytespool.NewBytesPool(poolMemory, blockSize)
	return func() roundTrip { return bytespoolOp(p) }
}

// bytespoolOp is bytespool's op on the pool p: NewBytes, Writes, Reads,
// Free.
func bytespoolOp(p *bytespool.BytesPool) roundTrip {
	return func(src, dst []byte, chunk int) error {
		buf := p.NewBytes(0)
		for off := 0; off < len(src); off += chunk {
			if _, err := buf.Write(src[off : off+chunk]); err != nil {
				buf.Free()
				return err
			}
		}
		// Bytes.Read may return fewer bytes than asked, as any
		// io.Reader may; each chunk is read to the end.
		for off := 0; off < len(dst); {
			n, err := buf.Read(dst[off:min(off+chunk, len(dst))])
			off += n
			if err == nil && n == 0 {
				err = io.ErrNoProgress
			}
			if err != nil {
				buf.Free()
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		buf.Free()
		return nil
	}
}
