package bytespool

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	"go.uber.org/atomic"
)

// This file holds what makes a pool observable: Debug mode, leak reports
// and the Stats fields that only slow paths update.

// Leak describes a Bytes or a pipe that the garbage collector reclaimed
// without Free or Close (see Config.OnLeak).
type Leak struct {
	// Blocks is how many blocks it still held; they are back in the pool.
	Blocks int
	// Bytes is how many unread bytes it held.
	Bytes int
	// Pipe is true for a pipe, both of whose ends were dropped, and false
	// for a Bytes.
	Pipe bool
	// Made is where it was made: the stack of the call to NewBytes or
	// NewPipe, one frame per two lines ("function" then "\tfile:line"),
	// innermost first. It is "" unless Config.Debug is set.
	Made string
}

// observer is the part of a pool that Config.Debug, Config.OnLeak and
// Stats' slow-path counters need. Nothing on the fast path of a write,
// read or free touches it.
type observer struct {
	debug  bool
	onLeak func(Leak)
	leakMu sync.Mutex // calls onLeak one at a time

	rejected atomic.Uint64 // writes refused with ErrPoolTooSmall or ErrBytesCapacityTooSmall
	leaks    atomic.Uint64 // Bytes and pipes reclaimed without Free or Close

	budgetWaiting atomic.Int32 // writers queued at a budget's cap (see Budget)
}

// fillObsStats fills the fields of s that observer keeps.
func (p *BytesPool) fillObsStats(s *Stats) {
	s.Rejected = p.obs.rejected.Load()
	s.Leaks = p.obs.leaks.Load()
	n := int(p.obs.budgetWaiting.Load())
	s.Waiters += n
	s.BlockWaiters += n
}

// rejectedIf counts err in Stats.Rejected if it is ErrPoolTooSmall or
// ErrBytesCapacityTooSmall, and returns it.
func (p *BytesPool) rejectedIf(err error) error {
	if err == ErrPoolTooSmall || err == ErrBytesCapacityTooSmall {
		p.obs.rejected.Inc()
	}
	return err
}

// reportLeak counts a leak and calls OnLeak with it, filling in Made from
// made, the stack its Bytes or pipe was made at (nil unless Debug). The
// caller holds no lock of the pool, nor of a Bytes or a pipe.
func (p *BytesPool) reportLeak(l Leak, made []uintptr) {
	p.obs.leaks.Inc()
	f := p.obs.onLeak
	if f == nil {
		return
	}
	if made != nil {
		l.Made = formatStack(made)
	}
	p.obs.leakMu.Lock()
	defer p.obs.leakMu.Unlock()
	f(l)
}

// stackDepth bounds the frames Debug records for Leak.Made and for the
// first Free of a Bytes.
const stackDepth = 32

// callers returns the stack of its caller's caller, skip frames further
// out: callers(0) called in NewBytes starts at NewBytes' caller.
func callers(skip int) []uintptr {
	pc := make([]uintptr, stackDepth)
	return pc[:runtime.Callers(skip+3, pc)]
}

// formatStack formats a stack that callers recorded, a frame per two lines
// as in a goroutine's trace: the function, then a tab, its file and line.
func formatStack(pc []uintptr) string {
	if len(pc) == 0 {
		return ""
	}
	var sb strings.Builder
	frames := runtime.CallersFrames(pc)
	for {
		f, more := frames.Next()
		fmt.Fprintf(&sb, "%s\n\t%s:%d\n", f.Function, f.File, f.Line)
		if !more {
			return sb.String()
		}
	}
}

// usedFreed is called, with mu held, by a method of a Bytes that found it
// freed when it started. In Debug mode it unlocks mu and panics with the
// stack of the first Free; otherwise it does nothing and the method goes
// on to return ErrClosed.
func (st *state) usedFreed(method string) {
	if !st.debug {
		return
	}
	msg := fmt.Sprintf("bytespool: Bytes.%s after Free (Config.Debug); the first Free was at:\n%s", method, formatStack(st.rare.freedAt))
	st.mu.Unlock()
	panic(msg)
}

// checkLive is usedFreed for a method that does not lock mu on the way in
// or that must check before anything else: it locks mu to look. Only in
// Debug mode; the caller checks st.debug first.
func (st *state) checkLive(method string) {
	st.mu.Lock()
	if st.closed {
		st.usedFreed(method)
	}
	st.mu.Unlock()
}
