// Command relay is a TCP relay built on bytespool: it accepts clients,
// dials an upstream for each, and copies both directions through pipes of
// one global pool.
//
//	go run ./examples/relay -listen 127.0.0.1:9000 -upstream 127.0.0.1:8080
//
// Each client connection gets a Budget of its own (pool.NewBudget), and the
// two pipes of the connection (client -> upstream and upstream -> client)
// are made from it, so no connection holds more than its share, and the
// whole relay holds no more than the pool. A pipe's writer reads the source
// conn straight into the pool's blocks (ReadFrom), and its reader writes
// them straight to the other conn (WriteTo, one writev on a TCP conn).
//
// Two rules keep it from deadlocking (README's "When to use it, and when
// not"):
//
//   - The two pipes of a connection together can never need more than the
//     connection's budget (pipeBound), so one direction never waits at the
//     budget for blocks that only the other direction's progress would free.
//     That matters for an upstream whose output depends on its input (an
//     echo, a request/response protocol).
//   - The relay serves at most pool/perConn connections at once
//     (maxConns), so the budgets never oversubscribe the pool and no pipe
//     ever waits at the pool for blocks another connection holds.
//
// On top of that, Config.OnPressure pauses accepting new connections when
// the blocks in use reach HighWater and resumes at LowWater: with a pool
// shared with other work, that sheds load before the pool runs dry.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/zjj/bytespool"
)

// gate is the pause switch that OnPressure flips. set never blocks: it only
// changes a flag under a mutex held for a few instructions, and the accept
// loop waits on a channel that set closes on resume.
type gate struct {
	mu     sync.Mutex
	paused bool
	resume chan struct{} // closed when paused goes back to false
	pauses int           // times paused, for logs and tests
}

func newGate() *gate { return &gate{resume: make(chan struct{})} }

// set is the pool's OnPressure callback.
func (g *gate) set(high bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if high == g.paused {
		return
	}
	g.paused = high
	if high {
		g.pauses++
		g.resume = make(chan struct{})
	} else {
		close(g.resume)
	}
}

// wait returns once the gate is open, or ctx's error.
func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	paused, resume := g.paused, g.resume
	g.mu.Unlock()
	if !paused {
		return nil
	}
	select {
	case <-resume:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pauses reports how many times the gate has closed.
func (g *gate) Pauses() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pauses
}

// newPool makes the relay's pool: maxMemory bytes of 4 KiB blocks, calling
// g.set when the blocks in use reach 3/4 of it and when they fall back to
// 1/2.
func newPool(maxMemory int, g *gate) (*bytespool.BytesPool, error) {
	const block = bytespool.DefaultBlockSize
	high := maxMemory * 3 / 4 / block * block
	low := maxMemory / 2 / block * block
	return bytespool.New(bytespool.Config{
		MaxMemory:  maxMemory,
		BlockSize:  block,
		HighWater:  high,
		LowWater:   low,
		OnPressure: g.set,
	})
}

// pipeBound is the maxBuffered of each of a connection's two pipes: a pipe
// holds at most ceil(maxBuffered/BlockSize)+1 blocks, so with perConn a
// multiple of two blocks, two pipes of perConn/2-BlockSize hold at most
// perConn between them.
func pipeBound(perConn, blockSize int) int {
	return perConn/2 - blockSize
}

// maxConns is how many connections fit the pool at perConn each.
func maxConns(pool *bytespool.BytesPool, perConn int) int {
	s := pool.Stats()
	if s.BlocksTotal == 0 {
		return 0 // an unlimited pool: no limit here either
	}
	return s.BlocksTotal * s.BlockSize / perConn
}

// serve accepts clients on ln until ctx ends, relaying each to upstream
// through pool with a budget of perConn bytes (a multiple of two blocks, at
// least four). It waits at g while g is paused. When ctx ends it closes ln
// and every connection, and returns once all handlers have returned.
func serve(ctx context.Context, ln net.Listener, pool *bytespool.BytesPool, g *gate, upstream string, perConn int) error {
	bs := pool.Stats().BlockSize
	if perConn < 4*bs || perConn%(2*bs) != 0 {
		return errors.New("relay: perConn must be a multiple of two blocks, at least four")
	}
	var slots chan struct{}
	if n := maxConns(pool, perConn); n > 0 {
		slots = make(chan struct{}, n)
	} else if pool.Stats().BlocksTotal > 0 {
		return errors.New("relay: perConn is larger than the pool")
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		if err := g.wait(ctx); err != nil {
			return nil
		}
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
		}
		c, err := ln.Accept()
		if err != nil {
			if slots != nil {
				<-slots
			}
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if slots != nil {
				defer func() { <-slots }()
			}
			// The loop may have been inside Accept when the pressure
			// came: hold this client, without dialing, until it passes.
			if err := g.wait(ctx); err != nil {
				c.Close()
				return
			}
			if err := handle(ctx, c, pool.NewBudget(perConn), upstream, pipeBound(perConn, bs)); err != nil {
				log.Printf("relay: %v: %v", c.RemoteAddr(), err)
			}
		}()
	}
}

// handle relays one client: it dials upstream, copies both directions, and
// closes both conns when both are done, or at once when either fails or ctx
// ends.
func handle(ctx context.Context, client net.Conn, budget *bytespool.Budget, upstream string, bound int) error {
	defer client.Close()
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", upstream)
	if err != nil {
		return err
	}
	defer up.Close()

	var once sync.Once
	abort := func() {
		once.Do(func() {
			client.Close()
			up.Close()
		})
	}
	stop := context.AfterFunc(ctx, abort)
	defer stop()

	errs := make(chan error, 2)
	go func() { errs <- pump(budget, up, client, bound, abort) }()
	go func() { errs <- pump(budget, client, up, bound, abort) }()
	err = errors.Join(<-errs, <-errs)
	if ctx.Err() != nil {
		return nil // shutting down: the errors are ours
	}
	return err
}

// pump copies src to dst through a pipe of budget until src's EOF, then
// half-closes dst. On any error it calls abort, which closes both conns, so
// the other direction ends too. The pipe's blocks are back in the pool when
// it returns.
func pump(budget *bytespool.Budget, dst, src net.Conn, bound int, abort func()) error {
	pr, pw := budget.NewPipe(bound)
	readErr := make(chan error, 1)
	go func() {
		_, err := pw.ReadFrom(src) // src -> blocks, waiting while bound bytes are unread
		pw.CloseWithError(err)     // nil: the reader gets io.EOF after the data
		readErr <- err
	}()
	_, err := pr.WriteTo(dst) // blocks -> dst, until the writer closes
	if err != nil {
		abort() // unblocks the writer if it is in src.Read
	}
	pr.Close() // frees what is buffered; a writer waiting for room gets io.ErrClosedPipe
	rerr := <-readErr
	if err != nil {
		if rerr != nil && !errors.Is(rerr, io.ErrClosedPipe) && !errors.Is(rerr, net.ErrClosed) {
			return rerr // src failed first: WriteTo returned that error
		}
		return err
	}
	// src is at EOF and dst has it all: pass the EOF on.
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			abort()
			return err
		}
	}
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to accept clients on")
	upstream := flag.String("upstream", "127.0.0.1:8080", "address to relay to")
	memory := flag.Int("memory", 64<<20, "pool size in bytes (a multiple of 4096)")
	perConn := flag.Int("per-conn", 256<<10, "budget per connection in bytes (a multiple of 8192)")
	flag.Parse()

	g := newGate()
	pool, err := newPool(*memory, g)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	log.Printf("relay: %v -> %v, at most %d connections", ln.Addr(), *upstream, maxConns(pool, *perConn))
	if err := serve(ctx, ln, pool, g, *upstream, *perConn); err != nil {
		log.Fatal(err)
	}
}
