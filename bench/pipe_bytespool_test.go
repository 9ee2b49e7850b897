package bench

import "github.com/zjj/bytespool"

func init() {
	pipePeers = append([]pipePeer{{"bytespool", setupBytespoolPipe}}, pipePeers...)
}

// setupBytespoolPipe: a pipe of a 100 MiB pool of 4 KiB blocks, bounded to
// 1 MiB unread.
func setupBytespoolPipe() pipeRun {
	p := bytespool.NewBytesPool(poolMemory, blockSize)
	return func(src, dst []byte, total, chunk int) (int64, error) {
		r, w := p.NewPipe(pipeBound)
		return transfer(r, w, src, dst, total, chunk)
	}
}
