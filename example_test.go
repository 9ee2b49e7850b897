package bytespool_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/zjj/bytespool"
)

// The seed's flow: a capped pool, a Bytes with its own cap, a large write,
// two small reads and io.ReadAll for the rest.
func ExampleNewBytesPool() {
	data := bytes.Repeat([]byte("0123456789"), 2000) // 20000 bytes

	// A pool of at most 1 MiB, in blocks of 4 KiB.
	p := bytespool.NewBytesPool(1<<20, 4<<10)

	// A Bytes that holds at most 64 KiB.
	b := p.NewBytes(64 << 10)
	defer b.Free()

	n, err := b.Write(data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %d bytes\n", n)

	head := make([]byte, 10)
	n, err = b.Read(head)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read %d bytes: %s\n", n, head)

	n, err = b.Read(head[:4])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read %d bytes: %s\n", n, head[:4])

	rest, err := io.ReadAll(b)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read %d bytes -> rest\n", len(rest))
	fmt.Println("blocks in use:", p.Stats().BlocksInUse)
	// Output:
	// wrote 20000 bytes
	// read 10 bytes: 0123456789
	// read 4 bytes: 0123
	// read 19986 bytes -> rest
	// blocks in use: 0
}

// New reports bad configurations as errors, and a capped pool refuses, at
// once, a write that could never fit.
func ExampleNew() {
	_, err := bytespool.New(bytespool.Config{MaxMemory: 100, BlockSize: 4096})
	fmt.Println(errors.Is(err, bytespool.ErrInvalidConfig))

	// 64 KiB in blocks of 4 KiB: 16 blocks.
	p, err := bytespool.New(bytespool.Config{MaxMemory: 64 << 10, BlockSize: 4 << 10})
	if err != nil {
		log.Fatal(err)
	}
	b := p.NewBytes(0)
	defer b.Free()

	n, err := b.Write(make([]byte, 100<<10))
	fmt.Println(n, errors.Is(err, bytespool.ErrPoolTooSmall))

	n, err = b.Write(make([]byte, 64<<10))
	fmt.Println(n, err)

	small := p.NewBytes(8)
	defer small.Free()
	n, err = small.WriteString("more than eight bytes")
	fmt.Println(n, errors.Is(err, bytespool.ErrBytesCapacityTooSmall))
	// Output:
	// true
	// 0 true
	// 65536 <nil>
	// 0 true
}

// WriteTo hands the unread blocks straight to the writer, without copying
// them into an intermediate buffer.
func ExampleBytes_WriteTo() {
	p := bytespool.NewBytesPool(0, 16) // unlimited, tiny blocks
	b := p.NewBytes(0)
	defer b.Free()

	b.WriteString("hello, ")
	b.WriteString("blocks of the pool!\n")
	n, err := b.WriteTo(os.Stdout)
	fmt.Println(n, err, b.Len())
	// Output:
	// hello, blocks of the pool!
	// 27 <nil> 0
}

// ReadFrom reads straight into blocks, and never reads more from the
// source than the Bytes may hold.
func ExampleBytes_ReadFrom() {
	p := bytespool.NewBytesPool(0, 4096)

	b := p.NewBytes(0)
	defer b.Free()
	n, err := b.ReadFrom(strings.NewReader("a stream of bytes"))
	fmt.Println(n, err, b.Len())

	capped := p.NewBytes(8)
	defer capped.Free()
	src := strings.NewReader("0123456789ABCDEF")
	n, err = capped.ReadFrom(src)
	fmt.Println(n, errors.Is(err, bytespool.ErrBytesCapacityTooSmall), src.Len())

	got, _ := io.ReadAll(capped)
	fmt.Printf("%s\n", got)
	// Output:
	// 17 <nil> 17
	// 8 true 8
	// 01234567
}

// Stats shows the pool's capacity, the blocks held right now, and the
// blocks carved so far: a limited pool carves its arena lazily.
func ExampleBytesPool_Stats() {
	p := bytespool.NewBytesPool(100*4096, 4096)
	s := p.Stats()
	fmt.Println(s.BlockSize, s.BlocksTotal, s.BlocksInUse, s.BlocksAllocated)

	b := p.NewBytes(0)
	b.Write(make([]byte, 10000)) // 3 blocks
	s = p.Stats()
	fmt.Println(s.BlockSize, s.BlocksTotal, s.BlocksInUse, s.BlocksAllocated)

	b.Free()
	s = p.Stats()
	fmt.Println(s.BlockSize, s.BlocksTotal, s.BlocksInUse, s.BlocksAllocated)
	// Output:
	// 4096 100 0 0
	// 4096 100 3 3
	// 4096 100 0 3
}

// Publish a pool's Stats with expvar: /debug/vars then shows them as JSON.
func ExampleBytesPool_Stats_expvar() {
	pool := bytespool.NewBytesPool(1<<20, 4096)
	expvar.Publish("bytespool", expvar.Func(func() any { return pool.Stats() }))

	// What /debug/vars serves for it, read back here as a monitor would.
	var vars struct{ BlockSize, BlocksTotal, BlocksInUse, BlockWaiters int }
	if err := json.Unmarshal([]byte(expvar.Get("bytespool").String()), &vars); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", vars)
	// Output:
	// {BlockSize:4096 BlocksTotal:256 BlocksInUse:0 BlockWaiters:0}
}
