package main

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zjj/bytespool"
)

const (
	testPool    = 1 << 20
	testPerIP   = 64 << 10
	testMaxBody = 32 << 10
	testTimeout = 300 * time.Millisecond
)

func newTestServer(t *testing.T) (*server, *bytespool.BytesPool, *httptest.Server) {
	t.Helper()
	pool, err := bytespool.New(bytespool.Config{MaxMemory: testPool})
	require.NoError(t, err)
	s := newServer(pool, testPerIP, testMaxBody, testTimeout)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, pool, ts
}

func pattern(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// post sends body (with its length when known is true, chunked otherwise)
// and returns the status and the response body.
func post(t *testing.T, url string, body io.Reader, known bool) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !known {
		body = io.MultiReader(body) // hides the length: the request goes chunked
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, got
}

// settled waits until the pool holds no block and no IP has a request in
// flight.
func settled(t *testing.T, s *server, pool *bytespool.BytesPool) {
	t.Helper()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		n := len(s.budgets)
		s.mu.Unlock()
		return n == 0 && pool.Stats().BlocksInUse == 0
	}, 5*time.Second, 5*time.Millisecond, "blocks in use: %d", pool.Stats().BlocksInUse)
	assert.Zero(t, pool.Stats().Waiters)
}

func TestEcho(t *testing.T) {
	s, pool, ts := newTestServer(t)
	sizes := []int{0, 1, 511, 512, 513, 4095, 4096, 4097, 20000, testMaxBody - 1, testMaxBody}
	for i, n := range sizes {
		body := pattern(uint64(i), n)
		for _, known := range []bool{true, false} {
			code, got := post(t, ts.URL, bytes.NewReader(body), known)
			require.Equal(t, http.StatusOK, code, "size %d, length known %v: %s", n, known, got)
			require.True(t, bytes.Equal(body, got), "size %d, length known %v: echo differs", n, known)
		}
	}

	// Many at once from one IP: 16 × at most 16 KiB fit its 64 KiB budget
	// only a few at a time; the others wait for blocks (well within the
	// timeout) and all succeed.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := pattern(uint64(100+i), 8<<10+i*512)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL, bytes.NewReader(body))
			if !assert.NoError(t, err) {
				return
			}
			resp, err := http.DefaultClient.Do(req)
			if !assert.NoError(t, err) {
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			assert.NoError(t, err)
			// 503 is allowed here: on a slow machine a request may
			// wait past the timeout for the others' blocks.
			if resp.StatusCode == http.StatusOK {
				assert.True(t, bytes.Equal(body, got), "request %d: echo differs", i)
			} else {
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "request %d: %s", i, got)
			}
		}()
	}
	wg.Wait()

	code, _ := post(t, ts.URL+"/x", http.NoBody, true)
	require.Equal(t, http.StatusOK, code)
	resp, err := http.Get(ts.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	settled(t, s, pool)
	require.LessOrEqual(t, pool.Stats().PeakInUse, testPerIP/bytespool.DefaultBlockSize, "one IP held more than its budget")
}

func TestTooLarge(t *testing.T) {
	s, pool, ts := newTestServer(t)
	body := pattern(1, testMaxBody+1)
	// With a Content-Length: refused before reading.
	code, _ := post(t, ts.URL, bytes.NewReader(body), true)
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
	// Chunked, one byte over: it fits the Bytes' extra byte, and the
	// handler refuses it by its length.
	code, _ = post(t, ts.URL, bytes.NewReader(body), false)
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
	// Chunked, well over: refused by ReadFromContext
	// (ErrBytesCapacityTooSmall) once the Bytes is full.
	code, _ = post(t, ts.URL, bytes.NewReader(pattern(2, testMaxBody+4096)), false)
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
	settled(t, s, pool)
	require.Positive(t, pool.Stats().Rejected)
}

// slowBody sends n bytes in pieces of 256, pausing between them.
type slowBody struct {
	data  []byte
	pause time.Duration
}

func (b *slowBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(b.pause)
	n := copy(p[:min(len(p), 256)], b.data)
	b.data = b.data[n:]
	return n, nil
}

func TestBudgetFull(t *testing.T) {
	s, pool, ts := newTestServer(t)

	// Another request of 127.0.0.1 in flight holds its whole budget.
	budget, release := s.budget("127.0.0.1")
	hog := budget.NewBytes(0)
	_, err := hog.Write(make([]byte, testPerIP))
	require.NoError(t, err)

	// A slow body of 2 KiB, which would take about 80 ms, waits at the
	// budget for a block and gets 503 once the timeout passes.
	start := time.Now()
	code, msg := post(t, ts.URL, &slowBody{data: pattern(2, 2<<10), pause: 10 * time.Millisecond}, false)
	require.Equal(t, http.StatusServiceUnavailable, code, "%s", msg)
	require.GreaterOrEqual(t, time.Since(start), testTimeout, "503 before the timeout")
	require.Equal(t, testPerIP/bytespool.DefaultBlockSize, pool.Stats().BlocksInUse, "the refused request kept blocks")

	// Another IP is not held up by 127.0.0.1's budget.
	body := pattern(3, 10<<10)
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.RemoteAddr = "192.0.2.7:4242"
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.True(t, bytes.Equal(body, rec.Body.Bytes()))

	// Once the other request is done, 127.0.0.1 is served again.
	hog.Free()
	release()
	code, got := post(t, ts.URL, &slowBody{data: pattern(4, 2<<10), pause: time.Millisecond}, false)
	require.Equal(t, http.StatusOK, code, "%s", got)
	require.True(t, bytes.Equal(pattern(4, 2<<10), got))

	settled(t, s, pool)
}

func TestStalledBody(t *testing.T) {
	s, pool, ts := newTestServer(t)
	// A body that sends 1 KiB and then nothing: the handler is blocked in
	// the body's Read, which only the read deadline ends.
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		_, _ = pw.Write(pattern(5, 1<<10))
	}()
	code, msg := post(t, ts.URL, pr, false)
	require.Equal(t, http.StatusServiceUnavailable, code, "%s", msg)
	pw.Close()
	settled(t, s, pool)
}

func TestPoolTooSmall(t *testing.T) {
	// A pool smaller than the largest body, with no cap per IP: a body
	// that would fill the whole pool gets ErrPoolTooSmall, and 503.
	pool, err := bytespool.New(bytespool.Config{MaxMemory: 16 << 10})
	require.NoError(t, err)
	s := newServer(pool, 0, testMaxBody, testTimeout)
	ts := httptest.NewServer(s)
	defer ts.Close()

	code, msg := post(t, ts.URL, bytes.NewReader(pattern(6, 20<<10)), false)
	require.Equal(t, http.StatusServiceUnavailable, code, "%s", msg)
	body := pattern(7, 12<<10)
	code, got := post(t, ts.URL, bytes.NewReader(body), true)
	require.Equal(t, http.StatusOK, code, "%s", got)
	require.True(t, bytes.Equal(body, got))
	settled(t, s, pool)
}
