package bytespool_test

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/zjj/bytespool"
)

// A producer goroutine streams lines to a consumer through a pipe that
// buffers at most 8 KiB in blocks of the pool: the producer waits whenever
// the consumer falls 8 KiB behind, and the blocks go back to the pool as the
// consumer reads them.
func ExampleBytesPool_NewPipe() {
	pool := bytespool.NewBytesPool(1<<20, 4096)
	r, w := pool.NewPipe(8 << 10)

	go func() {
		for i := 1; i <= 1000; i++ {
			if _, err := fmt.Fprintf(w, "record %d: %s\n", i, strings.Repeat("x", 1+i%50)); err != nil {
				w.CloseWithError(err)
				return
			}
		}
		w.Close() // the consumer gets io.EOF once it has read everything
	}()

	sc := bufio.NewScanner(r)
	lines, last := 0, ""
	for sc.Scan() {
		lines++
		last = sc.Text()
	}
	if err := sc.Err(); err != nil {
		fmt.Println("error:", err)
	}
	r.Close()

	fmt.Println("lines:", lines)
	fmt.Println("last:", last)
	fmt.Println("blocks in use:", pool.Stats().BlocksInUse)
	// Output:
	// lines: 1000
	// last: record 1000: x
	// blocks in use: 0
}
