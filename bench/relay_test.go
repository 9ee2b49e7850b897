package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The relay workload: relayClients clients at once, each sending
// relayBytes through a TCP relay on loopback to an echo upstream and
// reading them back. One op is all of them, with a fresh relay and echo
// server per benchmark run (not per op). Every peer is the same relay (an
// accept loop, a dial per client, both directions copied at once, the
// upstream's write side half-closed after the client's EOF and the
// client's after the upstream's), differing only in how it copies.
const (
	relayClients = 16
	relayBytes   = 2 << 20
)

// A relayPeer copies one direction of one connection: src to dst until
// src's EOF, then half-closes dst. newRelay is called once per relay (per
// benchmark run or test), so a peer can keep state, as bytespool keeps its
// pool, and returns the copy function with a per-connection setup.
type relayPeer struct {
	name     string
	newRelay func() relayConn
}

// relayConn is called once per connection and returns the function that
// copies one of its directions (called twice, at once).
type relayConn func() func(dst, src *net.TCPConn) error

var relayPeers = []relayPeer{
	{"copybuffer", func() relayConn {
		return func() func(dst, src *net.TCPConn) error {
			return func(dst, src *net.TCPConn) error {
				// The 32 KiB buffer a server author gives io.CopyBuffer.
				// The wrappers hide ReadFrom and WriteTo, so it is used:
				// with the bare TCP conns, io.CopyBuffer would splice
				// (peer splice) and never touch the buffer.
				buf := make([]byte, 32<<10)
				if _, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf); err != nil {
					return err
				}
				return dst.CloseWrite()
			}
		}
	}},
	{"bytesbuffer", func() relayConn {
		return func() func(dst, src *net.TCPConn) error {
			return func(dst, src *net.TCPConn) error {
				// Everything from src into a bytes.Buffer, then out.
				var buf bytes.Buffer
				if _, err := buf.ReadFrom(src); err != nil {
					return err
				}
				if _, err := buf.WriteTo(dst); err != nil {
					return err
				}
				return dst.CloseWrite()
			}
		}
	}},
	{"splice", func() relayConn {
		return func() func(dst, src *net.TCPConn) error {
			return func(dst, src *net.TCPConn) error {
				// io.Copy between two TCP conns: on Linux the kernel
				// splices through a pipe, no user-space buffer at all.
				if _, err := io.Copy(dst, src); err != nil {
					return err
				}
				return dst.CloseWrite()
			}
		}
	}},
}

// serve listens on 127.0.0.1:0 and runs handle on each connection in a
// goroutine of its own. It returns the address and a function that stops
// listening and waits for every handler to return.
func serve(handle func(net.Conn)) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }, nil
}

// startRelayEcho runs an echo server on 127.0.0.1:0 and returns its
// address and a function that stops it.
func startRelayEcho() (string, func(), error) {
	return serve(func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		buf := make([]byte, 32<<10)
		if _, err := io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, buf); err == nil {
			_ = c.(*net.TCPConn).CloseWrite()
		}
	})
}

// startRelay runs peer's relay on 127.0.0.1:0 to upstream and returns its
// address and a function that stops it, waiting for its connections, and
// returns the first error any of them had.
func startRelay(peer relayPeer, upstream string) (string, func() error, error) {
	perConn := peer.newRelay()
	var mu sync.Mutex
	var first error
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	addr, stop, err := serve(func(c net.Conn) {
		client := c.(*net.TCPConn)
		defer client.Close()
		u, err := net.Dial("tcp", upstream)
		if err != nil {
			fail(err)
			return
		}
		up := u.(*net.TCPConn)
		defer up.Close()
		copyDir := perConn()
		errs := make(chan error, 2)
		go func() { errs <- copyDir(up, client) }()
		go func() { errs <- copyDir(client, up) }()
		if err := errors.Join(<-errs, <-errs); err != nil {
			fail(err)
		}
	})
	if err != nil {
		return "", nil, err
	}
	return addr, func() error { stop(); return first }, nil
}

var relayPattern = func() []byte {
	p := make([]byte, relayBytes)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}()

// relayRound runs clients at once through the relay at addr, each sending
// p and reading the echo; with check, it compares every byte, else only
// the count.
func relayRound(addr string, clients int, sizes func(i int) int, check bool) error {
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			errs <- func() error {
				p := relayPattern[:sizes(i)]
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return err
				}
				defer c.Close()
				tc := c.(*net.TCPConn)
				if err := tc.SetDeadline(time.Now().Add(time.Minute)); err != nil {
					return err
				}
				werr := make(chan error, 1)
				go func() {
					_, err := tc.Write(p)
					if err == nil {
						err = tc.CloseWrite()
					}
					werr <- err
				}()
				var n int64
				if check {
					var got bytes.Buffer
					n, err = got.ReadFrom(tc)
					if err == nil && !bytes.Equal(got.Bytes(), p) {
						err = fmt.Errorf("client %d: echo differs", i)
					}
				} else {
					n, err = io.Copy(io.Discard, struct{ io.Reader }{tc})
				}
				if err != nil {
					return err
				}
				if n != int64(len(p)) {
					return fmt.Errorf("client %d: %d bytes back of %d", i, n, len(p))
				}
				return <-werr
			}()
		}()
	}
	var all []error
	for range clients {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// TestRelayPeers checks that every relay moves the right bytes, in sizes
// from none to relayBytes.
func TestRelayPeers(t *testing.T) {
	for _, peer := range relayPeers {
		t.Run(peer.name, func(t *testing.T) {
			echo, stopEcho, err := startRelayEcho()
			if err != nil {
				t.Fatal(err)
			}
			defer stopEcho()
			addr, stop, err := startRelay(peer, echo)
			if err != nil {
				t.Fatal(err)
			}
			sizes := []int{0, 1, 4095, 4096, 4097, 100 << 10, relayBytes - 1, relayBytes}
			err = relayRound(addr, len(sizes), func(i int) int { return sizes[i] }, true)
			if err2 := stop(); err == nil {
				err = err2
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// relayChildEnv names the peer a child process runs: see
// TestRelayRSSChild.
const relayChildEnv = "BYTESPOOL_BENCH_RELAY_CHILD"

// BenchmarkRelay: relayClients clients at once each send relayBytes
// through the relay and read them back. MB/s counts the bytes through the
// relay both ways (2 × relayClients × relayBytes per op). After timing, it
// runs one op of the same peer in a fresh process of this test binary and
// reports that process's peak resident memory (VmHWM, Linux), which is
// process-wide and never goes down, so it needs a process of its own:
// peak-RSS-MiB, and RSS-growth-MiB, VmHWM less VmRSS before the op (the
// process's baseline: the runtime, the test binary, relayPattern).
func BenchmarkRelay(b *testing.B) {
	for _, peer := range relayPeers {
		b.Run("peer="+peer.name, func(b *testing.B) {
			echo, stopEcho, err := startRelayEcho()
			if err != nil {
				b.Fatal(err)
			}
			defer stopEcho()
			addr, stop, err := startRelay(peer, echo)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(2 * relayClients * relayBytes)
			b.ResetTimer()
			for range b.N {
				if err := relayRound(addr, relayClients, func(int) int { return relayBytes }, false); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := stop(); err != nil {
				b.Fatal(err)
			}
			if runtime.GOOS != "linux" {
				return
			}
			peak, growth, err := relayChildRSS(peer.name)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(growth)/(1<<20), "RSS-growth-MiB")
		})
	}
}

// relayChildRSS runs TestRelayRSSChild for peer in a new process of this
// test binary and returns its VmHWM and VmHWM less its VmRSS before the
// op, in bytes.
func relayChildRSS(peer string) (peak, growth int, err error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestRelayRSSChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), relayChildEnv+"="+peer)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("child: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if _, rest, ok := strings.Cut(line, "relay-child: "); ok {
			var before int
			if _, err := fmt.Sscanf(rest, "rss-before=%d hwm=%d", &before, &peak); err != nil {
				return 0, 0, fmt.Errorf("child: %q: %v", rest, err)
			}
			return peak, peak - before, nil
		}
	}
	return 0, 0, fmt.Errorf("child printed no figures:\n%s", out)
}

// TestRelayRSSChild is BenchmarkRelay's child process: it runs only with
// relayChildEnv set to a peer's name, runs one op of that peer's relay,
// and prints VmRSS before and VmHWM after.
func TestRelayRSSChild(t *testing.T) {
	name := os.Getenv(relayChildEnv)
	if name == "" {
		t.Skip("BenchmarkRelay's child process; runs only from it")
	}
	i := 0
	for i < len(relayPeers) && relayPeers[i].name != name {
		i++
	}
	if i == len(relayPeers) {
		t.Fatalf("no relay peer %q", name)
	}
	echo, stopEcho, err := startRelayEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer stopEcho()
	addr, stop, err := startRelay(relayPeers[i], echo)
	if err != nil {
		t.Fatal(err)
	}
	before := procStatus(t, "VmRSS")
	err = relayRound(addr, relayClients, func(int) int { return relayBytes }, false)
	if err2 := stop(); err == nil {
		err = err2
	}
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("relay-child: rss-before=%d hwm=%d\n", before, procStatus(t, "VmHWM"))
}

// procStatus returns the field name of /proc/self/status, in bytes.
func procStatus(t *testing.T, name string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok || k != name {
			continue
		}
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		if err != nil {
			t.Fatalf("%s: %q: %v", name, v, err)
		}
		return kb << 10
	}
	t.Fatalf("no %s in /proc/self/status", name)
	return 0
}
