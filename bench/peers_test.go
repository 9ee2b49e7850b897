package bench

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/djherbis/buffer"
	pool "github.com/libp2p/go-buffer-pool"
	"github.com/oxtoacart/bpool"
	"github.com/valyala/bytebufferpool"

	"github.com/zjj/bytespool/bench/internal/kafka"
	"github.com/zjj/bytespool/bench/internal/original"
)

// The shape every workload uses unless it says otherwise.
const (
	blockSize  = 4 << 10
	poolMemory = 100 << 20
	poolBlocks = poolMemory / blockSize
)

// A roundTrip is one op of the buffer workloads: get a buffer, write src
// into it in chunk-byte writes, read it back into dst in chunk-byte reads,
// and release the buffer. len(src) == len(dst), a multiple of chunk.
type roundTrip func(src, dst []byte, chunk int) error

// A bufferPeer is one contender of the buffer workloads.
type bufferPeer struct {
	name string
	// setup builds the state that all goroutines of one benchmark run
	// share (a pool) for buffers of up to size bytes. Each goroutine calls
	// the function it returns once, to get its own roundTrip.
	setup func(size int) func() roundTrip
}

// bufferPeers are the contenders of Stream2MiB, Small1KiB, their parallel
// forms and Latency. bytespool puts itself first (bytespool_test.go).
// Each roundTrip calls its peer's methods directly, not through io.Reader
// and io.Writer, so that no peer pays for an indirect call or an escape
// that its users would not.
var bufferPeers = []bufferPeer{
	{"bytes-buffer", setupBytesBuffer},
	{"syncpool-buffer", setupSyncPoolBuffer},
	{"bytebufferpool", setupByteBufferPool},
	{"go-buffer-pool", setupGoBufferPool},
	{"bpool", setupBpool},
	{"djherbis-buffer", setupDjherbisBuffer},
	{"original", setupOriginal},
	{"kafka", setupKafka},
	{"floor", setupFloor},
}

var errShortRead = errors.New("bench: short read")

// readChunk reads exactly len(p) bytes with one Read, as a buffer holding
// at least len(p) bytes does.
func readChunk(n int, err error, p []byte) error {
	if err != nil {
		return err
	}
	if n != len(p) {
		return fmt.Errorf("%w: %d of %d bytes", errShortRead, n, len(p))
	}
	return nil
}

// setupBytesBuffer: a fresh bytes.Buffer per op, grown by its writes.
func setupBytesBuffer(int) func() roundTrip {
	return func() roundTrip {
		return func(src, dst []byte, chunk int) error {
			var buf bytes.Buffer
			for off := 0; off < len(src); off += chunk {
				buf.Write(src[off : off+chunk])
			}
			for off := 0; off < len(dst); off += chunk {
				p := dst[off : off+chunk]
				n, err := buf.Read(p)
				if err := readChunk(n, err, p); err != nil {
					return err
				}
			}
			return nil
		}
	}
}

// setupSyncPoolBuffer: a sync.Pool of *bytes.Buffer, the idiomatic pool.
func setupSyncPoolBuffer(int) func() roundTrip {
	bufs := &sync.Pool{New: func() any { return new(bytes.Buffer) }}
	return func() roundTrip {
		return func(src, dst []byte, chunk int) error {
			buf := bufs.Get().(*bytes.Buffer)
			for off := 0; off < len(src); off += chunk {
				buf.Write(src[off : off+chunk])
			}
			for off := 0; off < len(dst); off += chunk {
				p := dst[off : off+chunk]
				n, err := buf.Read(p)
				if err := readChunk(n, err, p); err != nil {
					return err
				}
			}
			buf.Reset()
			bufs.Put(buf)
			return nil
		}
	}
}

// setupByteBufferPool: valyala/bytebufferpool. ByteBuffer has no Read, so
// reads copy out of its B field, as its users do.
func setupByteBufferPool(int) func() roundTrip {
	var bufs bytebufferpool.Pool
	return func() roundTrip {
		return func(src, dst []byte, chunk int) error {
			buf := bufs.Get()
			for off := 0; off < len(src); off += chunk {
				buf.Write(src[off : off+chunk])
			}
			for off := 0; off < len(dst); off += chunk {
				p := dst[off : off+chunk]
				if err := readChunk(copy(p, buf.B[off:]), nil, p); err != nil {
					return err
				}
			}
			bufs.Put(buf)
			return nil
		}
	}
}

// setupGoBufferPool: libp2p/go-buffer-pool's Buffer, which takes its
// storage from a pool of power-of-two slices and gives it back as it is
// read. Its pool is the package's global one.
func setupGoBufferPool(int) func() roundTrip {
	return func() roundTrip {
		return func(src, dst []byte, chunk int) error {
			var buf pool.Buffer
			for off := 0; off < len(src); off += chunk {
				buf.Write(src[off : off+chunk])
			}
			for off := 0; off < len(dst); off += chunk {
				p := dst[off : off+chunk]
				n, err := buf.Read(p)
				if err := readChunk(n, err, p); err != nil {
					return err
				}
			}
			buf.Reset()
			return nil
		}
	}
}

// setupBpool: oxtoacart/bpool, a bounded channel of *bytes.Buffer.
func setupBpool(int) func() roundTrip {
	bufs := bpool.NewBufferPool(64)
	return func() roundTrip {
		return func(src, dst []byte, chunk int) error {
			buf := bufs.Get()
			for off := 0; off < len(src); off += chunk {
				buf.Write(src[off : off+chunk])
			}
			for off := 0; off < len(dst); off += chunk {
				p := dst[off : off+chunk]
				n, err := buf.Read(p)
				if err := readChunk(n, err, p); err != nil {
					return err
				}
			}
			bufs.Put(buf)
			return nil
		}
	}
}

// setupDjherbisBuffer: djherbis/buffer, a Partition that chains 4 KiB
// in-memory buffers taken from a pool, the closest functional peer.
func setupDjherbisBuffer(int) func() roundTrip {
	blocks := buffer.NewMemPool(blockSize)
	return func() roundTrip {
		return func(src, dst []byte, chunk int) error {
			buf := buffer.NewPartition(blocks)
			for off := 0; off < len(src); off += chunk {
				if _, err := buf.Write(src[off : off+chunk]); err != nil {
					return err
				}
			}
			for off := 0; off < len(dst); off += chunk {
				p := dst[off : off+chunk]
				n, err := buf.Read(p)
				if err := readChunk(n, err, p); err != nil {
					return err
				}
			}
			buf.Reset()
			return nil
		}
	}
}

// setupOriginal: the seed's design (package original): sync.Pool segments,
// one semaphore token per segment, a container/list under a mutex.
func setupOriginal(int) func() roundTrip {
	p := original.NewPool(poolMemory, blockSize)
	return func() roundTrip {
		return func(src, dst []byte, chunk int) error {
			buf := p.NewBytes(0)
			defer buf.Free()
			for off := 0; off < len(src); off += chunk {
				if _, err := buf.Write(src[off : off+chunk]); err != nil {
					return err
				}
			}
			for off := 0; off < len(dst); off += chunk {
				p := dst[off : off+chunk]
				n, err := buf.Read(p)
				if err := readChunk(n, err, p); err != nil {
					return err
				}
			}
			return nil
		}
	}
}

// setupFloor: no library at all. Each goroutine owns a preallocated buffer
// and the op is just the copies the workload implies: src into the buffer,
// the buffer into dst, chunk by chunk.
func setupFloor(size int) func() roundTrip {
	return func() roundTrip {
		buf := make([]byte, size)
		return func(src, dst []byte, chunk int) error {
			for off := 0; off < len(src); off += chunk {
				copy(buf[off:off+chunk], src[off:off+chunk])
			}
			for off := 0; off < len(dst); off += chunk {
				copy(dst[off:off+chunk], buf[off:off+chunk])
			}
			return nil
		}
	}
}

// setupKafka: the Kafka producer's BufferPool design (package kafka), capped
// at the same 100 MiB: one mutex, a FIFO deque of free 4 KiB blocks, and a
// FIFO of waiters, each with a sync.Cond of its own. A buffer is a chain of
// its blocks, with its header from a sync.Pool; a write allocates every
// block it needs with one Allocate, a read that empties blocks gives them
// back with one Deallocate.
func setupKafka(int) func() roundTrip {
	p := kafka.NewPool(poolMemory, blockSize)
	return func() roundTrip {
		return func(src, dst []byte, chunk int) error {
			buf := p.NewBuffer()
			defer buf.Free()
			for off := 0; off < len(src); off += chunk {
				if _, err := buf.Write(src[off : off+chunk]); err != nil {
					return err
				}
			}
			for off := 0; off < len(dst); off += chunk {
				p := dst[off : off+chunk]
				n, err := buf.Read(p)
				if err := readChunk(n, err, p); err != nil {
					return err
				}
			}
			return nil
		}
	}
}
