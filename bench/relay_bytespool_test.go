package bench

import (
	"errors"
	"io"
	"net"

	"github.com/zjj/bytespool"
)

// relayPerConn is the budget of each connection of the bytespool relay:
// 256 KiB, two pipes of 124 KiB, as examples/relay sizes them.
const relayPerConn = 256 << 10

func init() {
	relayPeers = append([]relayPeer{
		{"bytespool", func() relayConn { return newBytespoolRelay(blockSize) }},
		{"bytespool-32k", func() relayConn { return newBytespoolRelay(32 << 10) }},
	}, relayPeers...)
}

// newBytespoolRelay is examples/relay's copying, without its accept gate
// and connection limit (the benchmark's 16 connections fit the pool many
// times over): a pool of 100 MiB of bs-byte blocks, a budget of
// relayPerConn per connection, and per direction a pipe of it that the
// source is read into (PipeWriter.ReadFrom) and the destination written
// from (PipeReader.WriteTo, one writev per batch). ReadFrom reads at most
// to the end of a block per call, so bs sets how much a read can bring:
// peer bytespool has examples/relay's 4 KiB blocks, bytespool-32k blocks
// as large as copybuffer's buffer.
func newBytespoolRelay(bs int) relayConn {
	pool := bytespool.NewBytesPool(poolMemory, bs)
	return func() func(dst, src *net.TCPConn) error {
		budget := pool.NewBudget(relayPerConn)
		return func(dst, src *net.TCPConn) error {
			pr, pw := budget.NewPipe(relayPerConn/2 - bs)
			readErr := make(chan error, 1)
			go func() {
				_, err := pw.ReadFrom(src)
				pw.CloseWithError(err)
				readErr <- err
			}()
			_, err := pr.WriteTo(dst)
			if err != nil {
				// examples/relay closes both conns here; the benchmark's
				// connection closes them when both directions return.
				src.Close()
				dst.Close()
			}
			pr.Close()
			rerr := <-readErr
			if err != nil {
				if rerr != nil && !errors.Is(rerr, io.ErrClosedPipe) && !errors.Is(rerr, net.ErrClosed) {
					return rerr
				}
				return err
			}
			return dst.CloseWrite()
		}
	}
}
