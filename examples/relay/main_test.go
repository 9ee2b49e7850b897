package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zjj/bytespool"
)

// startEcho runs an echo server on loopback: it copies each conn back to
// itself, then half-closes it. It stops when the test ends. accepted counts
// the conns it took.
func startEcho(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted = new(atomic.Int64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.Copy(c, c); err == nil {
					_ = c.(*net.TCPConn).CloseWrite()
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), accepted
}

// startRelay runs serve on 127.0.0.1:0 and returns its address and a stop
// function that ends it and checks that it returned nil.
func startRelay(t *testing.T, pool *bytespool.BytesPool, g *gate, upstream string, perConn int) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, pool, g, upstream, perConn) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err, "serve")
			case <-time.After(10 * time.Second):
				t.Error("serve did not return within 10 s of its context's end")
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// roundTrip sends a pattern of size bytes through the relay at addr and
// checks that the same bytes come back. A slow client reads in 512-byte
// pieces with pauses, through a small receive buffer, so that the relay's
// pipes toward it fill up.
func roundTrip(addr string, seed uint64, size int, slow bool) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	if err := tc.SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		return err
	}
	if slow {
		if err := tc.SetReadBuffer(4 << 10); err != nil {
			return err
		}
	}

	werr := make(chan error, 1)
	go func() {
		p := want
		for len(p) > 0 {
			n := min(len(p), 1+rng.IntN(64<<10))
			if _, err := tc.Write(p[:n]); err != nil {
				werr <- err
				return
			}
			p = p[n:]
		}
		werr <- tc.CloseWrite()
	}()

	got := make([]byte, 0, size)
	if slow {
		buf := make([]byte, 512)
		for i := 0; ; i++ {
			n, err := tc.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if i%8 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	} else {
		b := bytes.NewBuffer(got)
		if _, err := b.ReadFrom(tc); err != nil {
			return err
		}
		got = b.Bytes()
	}
	if err := <-werr; err != nil {
		return err
	}
	if len(got) != size {
		return errors.New("echo length differs")
	}
	if !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		return errors.New("echo differs at byte " + strconv.Itoa(i))
	}
	return nil
}

func TestRelay(t *testing.T) {
	const (
		clients  = 300
		parallel = 50
		perConn  = 64 << 10
		memory   = parallel * perConn // what maxConns allows, with parallel clients at once
	)
	g := newGate()
	pool, err := newPool(memory, g)
	require.NoError(t, err)
	echo, _ := startEcho(t)
	addr, stop := startRelay(t, pool, g, echo, perConn)
	total := pool.Stats().BlocksTotal
	require.Equal(t, memory/bytespool.DefaultBlockSize, total)

	// Sample the pool while the clients run.
	var maxSeen atomic.Int64
	var over atomic.Int64
	sampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		for {
			s := pool.Stats()
			if int64(s.BlocksInUse) > maxSeen.Load() {
				maxSeen.Store(int64(s.BlocksInUse))
			}
			if s.BlocksInUse > s.BlocksTotal {
				over.Add(1)
			}
			select {
			case <-sampling:
				return
			case <-tick.C:
			}
		}
	}()

	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var slowN, bytesSent atomic.Int64
	for i := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			slow := i%5 == 0
			size := rng.IntN(320 << 10)
			if slow {
				size = rng.IntN(96 << 10)
				slowN.Add(1)
			}
			if i%50 == 0 {
				size = 0 // an empty stream: EOF both ways and nothing else
			}
			if err := roundTrip(addr, uint64(i), size, slow); err != nil {
				failed.Add(1)
				assert.NoError(t, err, "client %d (size %d, slow %v)", i, size, slow)
			}
			bytesSent.Add(int64(size))
		}()
	}
	wg.Wait()
	close(sampling)
	<-sampled
	require.Zero(t, failed.Load(), "clients that failed")

	// Every byte came back, so both pipes of every connection have closed.
	require.Eventually(t, func() bool { return pool.Stats().BlocksInUse == 0 }, 5*time.Second, 5*time.Millisecond,
		"blocks in use after the clients: %d", pool.Stats().BlocksInUse)
	stop()

	s := pool.Stats()
	t.Logf("%d clients (%d slow), %d KiB each way; max in use sampled %d, PeakInUse %d of %d blocks; %d waits; gate paused %d times",
		clients, slowN.Load(), bytesSent.Load()>>10, maxSeen.Load(), s.PeakInUse, s.BlocksTotal, s.Waits, g.Pauses())
	assert.Zero(t, over.Load(), "samples with BlocksInUse > BlocksTotal")
	assert.LessOrEqual(t, int(maxSeen.Load()), total)
	assert.LessOrEqual(t, s.PeakInUse, s.BlocksTotal)
	assert.Positive(t, s.PeakInUse, "the relay never held a block")
	assert.Zero(t, s.BlocksInUse)
	assert.Zero(t, s.Waiters)
	assert.Zero(t, s.Leaks)
}

// TestPressurePausesAccept fills the pool past HighWater from outside the
// relay (another user of the same pool), checks that a new client is not
// accepted while it is held, and that it is served once the blocks are
// freed.
func TestPressurePausesAccept(t *testing.T) {
	const (
		memory  = 256 << 10 // 64 blocks: HighWater 48, LowWater 32
		perConn = 16 << 10
	)
	g := newGate()
	pool, err := newPool(memory, g)
	require.NoError(t, err)
	echo, accepted := startEcho(t)
	addr, stop := startRelay(t, pool, g, echo, perConn)

	// The relay works before the pressure.
	require.NoError(t, roundTrip(addr, 1, 10<<10, false))
	require.EqualValues(t, 1, accepted.Load())

	hog := pool.NewBytes(0)
	_, err = hog.Write(make([]byte, memory*3/4))
	require.NoError(t, err)
	require.Equal(t, 1, g.Pauses(), "OnPressure(true) at HighWater")

	// Two clients while paused: the kernel completes their handshakes (they
	// wait in the backlog, or the relay holds the one its loop was already
	// accepting), but the relay must not dial upstream for them.
	var probes []*net.TCPConn
	for i := range 2 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err)
		defer c.Close()
		tc := c.(*net.TCPConn)
		require.NoError(t, tc.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = tc.Write([]byte("hello " + strconv.Itoa(i)))
		require.NoError(t, err)
		require.NoError(t, tc.CloseWrite())
		probes = append(probes, tc)
	}
	time.Sleep(300 * time.Millisecond)
	require.EqualValues(t, 1, accepted.Load(), "upstream conns while paused")
	require.NoError(t, probes[0].SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	n, err := probes[0].Read(make([]byte, 16))
	require.Zero(t, n, "an answer while paused")
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)

	hog.Free() // 0 blocks in use: OnPressure(false), and the relay goes on
	for i, tc := range probes {
		require.NoError(t, tc.SetReadDeadline(time.Now().Add(10*time.Second)))
		got, err := io.ReadAll(tc)
		require.NoError(t, err)
		require.Equal(t, "hello "+strconv.Itoa(i), string(got))
	}
	require.EqualValues(t, 3, accepted.Load())
	require.Equal(t, 1, g.Pauses())

	stop()
	require.Zero(t, pool.Stats().BlocksInUse)
}

func TestServeRejectsBadPerConn(t *testing.T) {
	g := newGate()
	pool, err := newPool(64<<10, g)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	for _, perConn := range []int{0, 4 << 10, 12 << 10, 128 << 10} {
		require.Error(t, serve(context.Background(), ln, pool, g, "127.0.0.1:1", perConn), "perConn %d", perConn)
	}
}
