package fuzz

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/zjj/bytespool"
)

// A script runs the ops of a single-goroutine fuzz target on Bytes and
// their bytesModels, checking each result as it goes, and keeps a trace of
// the ops and their results, which a failure prints whole.
type script struct {
	t     *testing.T
	trace []string
}

// newScript starts a script whose trace opens with header.
func newScript(t *testing.T, header string) *script {
	return &script{t: t, trace: []string{header}}
}

// op starts the trace line of the next op.
func (s *script) op(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf(format, args...))
}

// note appends to the trace line of the last op.
func (s *script) note(format string, args ...any) {
	s.trace[len(s.trace)-1] += fmt.Sprintf(format, args...)
}

// fail ends the test with the message and the trace.
func (s *script) fail(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s\nscript so far:\n  %s", fmt.Sprintf(format, args...), strings.Join(s.trace, "\n  "))
}

// check notes the result of the last op and fails unless it is the
// model's.
func (s *script) check(what string, gotN int64, gotErr error, wantN int64, wantErr error) {
	s.t.Helper()
	s.note(" = %d, %v", gotN, gotErr)
	if gotN != wantN || !sameErr(gotErr, wantErr) {
		s.fail("%s = %d, %v; want %d, %v", what, gotN, gotErr, wantN, wantErr)
	}
}

// log logs the whole trace if BYTESPOOL_FUZZ_TRACE is set.
func (s *script) log() {
	if os.Getenv("BYTESPOOL_FUZZ_TRACE") != "" {
		s.t.Logf("script:\n  %s", strings.Join(s.trace, "\n  "))
	}
}

// The ops below run on b and check against m; name prefixes their trace
// lines (a Bytes' number, or nothing).

// read is Read into a buffer of n bytes.
func (s *script) read(name string, b *bytespool.Bytes, m *bytesModel, n int) {
	s.t.Helper()
	s.op("%sRead(%d)", name, n)
	buf := make([]byte, n)
	got, err := b.Read(buf)
	want, werr := m.Read(n)
	s.check("Read", int64(got), err, int64(len(want)), werr)
	if !bytes.Equal(buf[:got], want) {
		s.fail("Read returned %x; want %x", buf[:got], want)
	}
}

// readByte is ReadByte.
func (s *script) readByte(name string, b *bytespool.Bytes, m *bytesModel) {
	s.t.Helper()
	s.op("%sReadByte()", name)
	got, err := b.ReadByte()
	s.note(" = %#x, %v", got, err)
	want, werr := m.ReadByte()
	if got != want || !sameErr(err, werr) {
		s.fail("ReadByte = %#x, %v; want %#x, %v", got, err, want, werr)
	}
}

// readFrom is ReadFrom of a bytes.Reader of src; it also checks how much
// of src is left unread.
func (s *script) readFrom(name string, b *bytespool.Bytes, m *bytesModel, src []byte) {
	s.t.Helper()
	s.op("%sReadFrom(bytes.Reader of %d bytes)", name, len(src))
	r := bytes.NewReader(src)
	got, err := b.ReadFrom(r)
	want, left, werr := m.ReadFrom(src)
	s.check("ReadFrom", got, err, want, werr)
	if r.Len() != left {
		s.fail("ReadFrom left %d bytes of its source unread; want %d", r.Len(), left)
	}
}

// writeTo is WriteTo into an appendingWriter.
func (s *script) writeTo(name string, b *bytespool.Bytes, m *bytesModel) {
	s.t.Helper()
	s.op("%sWriteTo(appendingWriter)", name)
	var w appendingWriter
	got, err := b.WriteTo(&w)
	want, werr := m.WriteTo()
	s.check("WriteTo", got, err, int64(len(want)), werr)
	if !bytes.Equal(w.buf.Bytes(), want) {
		s.fail("WriteTo wrote %x; want %x", w.buf.Bytes(), want)
	}
	if w.overCap > 0 {
		s.fail("WriteTo handed its writer %d slices with cap > len", w.overCap)
	}
}

// appendingWriter is a bytes.Buffer that also appends a byte to every slice
// it is given, as some framers do: a slice with room past its bytes would
// let it write into the pool's next block, which the model then catches as
// another Bytes' (or a later op's) data changing. It counts such slices.
type appendingWriter struct {
	buf     bytes.Buffer
	overCap int
}

func (w *appendingWriter) Write(p []byte) (int, error) {
	if cap(p) != len(p) {
		w.overCap++
	}
	//lint:ignore SA1023 the harness breaks the contract on purpose: a slice with room past its bytes must not let it reach another block
	_ = append(p, 0xee)
	return w.buf.Write(p)
}

// checkLen fails unless b's Len is the model's.
func (s *script) checkLen(name string, b *bytespool.Bytes, m *bytesModel) {
	s.t.Helper()
	if got, want := b.Len(), m.Len(); got != want {
		s.fail("after the last op: %sLen = %d; want %d", name, got, want)
	}
}

// drain checks, at the end of a script, that what b still holds reads
// back intact, unless b is freed.
func (s *script) drain(name string, b *bytespool.Bytes, m *bytesModel) {
	s.t.Helper()
	if m.closed {
		return
	}
	var buf bytes.Buffer
	got, err := b.WriteTo(&buf)
	want, _ := m.WriteTo()
	if err != nil || !bytes.Equal(buf.Bytes(), want) {
		s.fail("final %sWriteTo = %d, %v, data %x; want %d, nil, data %x", name, got, err, buf.Bytes(), len(want), want)
	}
}
