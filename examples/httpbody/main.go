// Command httpbody is an HTTP server that buffers each request body in a
// bytespool Bytes before it acts on it, here by echoing it back.
//
//	go run ./examples/httpbody -listen 127.0.0.1:8080
//	curl --data-binary @file http://127.0.0.1:8080/
//
// Each body is bounded three ways: by maxBody (413 Request Entity Too Large
// past it), by a Budget of the client's IP that all its requests in flight
// share, and by the pool that all clients share. A request that cannot get
// its blocks within the timeout, because its IP's budget or the pool is
// full, or whose body does not arrive within it, gets 503 Service
// Unavailable, and holds nothing once it has.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/zjj/bytespool"
)

// server buffers request bodies in pool, at most maxBody bytes each and
// perIP bytes for all requests of one client IP at once, giving up after
// timeout.
type server struct {
	pool    *bytespool.BytesPool
	perIP   int
	maxBody int
	timeout time.Duration

	mu      sync.Mutex
	budgets map[string]*ipBudget
}

// ipBudget is an IP's budget and the number of its requests in flight. A
// budget needs no closing; the entry goes when the last request of the IP
// is done, so the map holds only the IPs with requests in flight, and all
// requests of one IP in flight share one budget.
type ipBudget struct {
	budget *bytespool.Budget
	active int
}

func newServer(pool *bytespool.BytesPool, perIP, maxBody int, timeout time.Duration) *server {
	return &server{
		pool:    pool,
		perIP:   perIP,
		maxBody: maxBody,
		timeout: timeout,
		budgets: make(map[string]*ipBudget),
	}
}

// budget returns ip's budget and the function to call when the request is
// done with it.
func (s *server) budget(ip string) (*bytespool.Budget, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.budgets[ip]
	if e == nil {
		e = &ipBudget{budget: s.pool.NewBudget(s.perIP)}
		s.budgets[ip] = e
	}
	e.active++
	return e.budget, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if e.active--; e.active == 0 {
			delete(s.budgets, ip)
		}
	}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "POST or PUT a body", http.StatusMethodNotAllowed)
		return
	}
	if r.ContentLength > int64(s.maxBody) {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge) // no need to read it
		return
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	budget, release := s.budget(ip)
	defer release()

	// One byte over maxBody: a body of unknown length that is exactly
	// maxBody long fills a Bytes of maxBody before its reader says EOF,
	// and ReadFrom, which never reads what it cannot keep, would then
	// report ErrBytesCapacityTooSmall. With room for one more byte, EOF
	// arrives first; a body that does fill the extra byte is too large.
	body := budget.NewBytes(s.maxBody + 1)
	defer body.Free() // runs before release

	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	// ReadFromContext looks at ctx between reads and while it waits for
	// blocks, but cannot interrupt a read blocked in the body: a read
	// deadline bounds that. (It is not supported by every
	// ResponseWriter, such as httptest's recorder; ctx still bounds the
	// waits for blocks there.)
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.timeout))

	_, err = body.ReadFromContext(ctx, r.Body)
	switch {
	case err == nil && body.Len() <= s.maxBody:
	case err == nil, errors.Is(err, bytespool.ErrBytesCapacityTooSmall):
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	case errors.Is(err, bytespool.ErrPoolTooSmall),
		errors.Is(err, context.DeadlineExceeded), // timeout while waiting for blocks or between reads
		errors.Is(err, os.ErrDeadlineExceeded):   // the body's read deadline
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy, try again", http.StatusServiceUnavailable)
		return
	case errors.Is(err, context.Canceled):
		return // the client went away
	default:
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	_ = rc.SetReadDeadline(time.Time{})

	// The body is all here: act on it. This one echoes it, straight from
	// the blocks.
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
	_, _ = body.WriteTo(w) // an error: the client went away
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	memory := flag.Int("memory", 64<<20, "pool size in bytes (a multiple of 4096)")
	perIP := flag.Int("per-ip", 4<<20, "bytes of bodies in flight per client IP (a multiple of 4096)")
	maxBody := flag.Int("max-body", 1<<20, "largest body in bytes")
	timeout := flag.Duration("timeout", 5*time.Second, "time to read a body, waits for memory included")
	flag.Parse()

	pool, err := bytespool.New(bytespool.Config{MaxMemory: *memory})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Addr:              *listen,
		Handler:           newServer(pool, *perIP, *maxBody, *timeout),
		ReadHeaderTimeout: 5 * time.Second,
	}
	log.Fatal(srv.ListenAndServe())
}
