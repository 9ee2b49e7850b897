package fuzz

import (
	"errors"
	"fmt"
	"io"

	"github.com/zjj/bytespool"
)

// bytesModel is the reference for one Bytes used by one goroutine: the
// unread data, and the blocks the Bytes holds, each with its unread range
// [off, end). The block list is what ErrPoolTooSmall and Stats().BlocksInUse
// depend on. The rules are those of bytes.go and chain.go:
//
//   - Write fills the room of the last block (blockSize - end), then takes
//     ceil(rest/blockSize) new blocks, each filled from offset 0.
//   - Reading frees a block as soon as its off reaches its end, the last one
//     included, so an empty Bytes holds no block.
//   - ReadFrom (from a bytes.Reader, which has a Len method) fills the room
//     of the last block first; once that is full it takes a new block for
//     a source that has bytes left, reads up to a block into it, and the
//     block joins holding them. It takes no block for a source at its end,
//     and fails with ErrPoolTooSmall, reading nothing, where the Bytes
//     already holds every block of the pool.
type bytesModel struct {
	bs, capBlocks, maxLen int
	closed                bool
	data                  []byte
	blocks                []extent
}

type extent struct{ off, end int }

func newBytesModel(bs, capBlocks, maxLen int) *bytesModel {
	return &bytesModel{bs: bs, capBlocks: capBlocks, maxLen: maxLen}
}

func (m *bytesModel) clone() *bytesModel {
	c := *m
	c.data = append([]byte(nil), m.data...)
	c.blocks = append([]extent(nil), m.blocks...)
	return &c
}

func (m *bytesModel) Len() int {
	if m.closed {
		return 0
	}
	return len(m.data)
}

func (m *bytesModel) Blocks() int { return len(m.blocks) }

func (m *bytesModel) room() int {
	if len(m.blocks) == 0 {
		return 0
	}
	return m.bs - m.blocks[len(m.blocks)-1].end
}

// need is the number of new blocks n more bytes need.
func (m *bytesModel) need(n int) int {
	if r := m.room(); n > r {
		return (n - r + m.bs - 1) / m.bs
	}
	return 0
}

func (m *bytesModel) tooBig(blocks int) bool { return m.capBlocks > 0 && blocks > m.capBlocks }

// fill appends p the way write and appendBlock do: into the room of the last
// block first; it returns what did not fit.
func (m *bytesModel) fill(p []byte) []byte {
	k := min(m.room(), len(p))
	if k > 0 {
		m.blocks[len(m.blocks)-1].end += k
		m.data = append(m.data, p[:k]...)
	}
	return p[k:]
}

// Write is Write, WriteString and WriteByte, for a single user (no waits).
func (m *bytesModel) Write(p []byte) (int, error) {
	n := len(p)
	switch {
	case m.closed:
		return 0, bytespool.ErrClosed
	case n == 0:
		return 0, nil
	case m.maxLen > 0 && len(m.data)+n > m.maxLen:
		return 0, bytespool.ErrBytesCapacityTooSmall
	case m.tooBig(len(m.blocks) + m.need(n)):
		return 0, bytespool.ErrPoolTooSmall
	}
	rest := m.fill(p)
	for len(rest) > 0 {
		k := min(m.bs, len(rest))
		m.blocks = append(m.blocks, extent{0, k})
		m.data = append(m.data, rest[:k]...)
		rest = rest[k:]
	}
	m.check()
	return n, nil
}

// Read is Read into a buffer of n bytes; it returns the bytes read.
func (m *bytesModel) Read(n int) ([]byte, error) {
	switch {
	case m.closed:
		return nil, bytespool.ErrClosed
	case n == 0:
		return nil, nil
	case len(m.data) == 0:
		return nil, io.EOF
	}
	k := min(n, len(m.data))
	out := append([]byte(nil), m.data[:k]...)
	m.data = m.data[k:]
	for left := k; left > 0; {
		b := &m.blocks[0]
		t := min(left, b.end-b.off)
		b.off += t
		left -= t
		if b.off == b.end {
			m.blocks = m.blocks[1:]
		}
	}
	m.check()
	return out, nil
}

func (m *bytesModel) ReadByte() (byte, error) {
	if m.closed {
		return 0, bytespool.ErrClosed
	}
	p, err := m.Read(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// ReadFrom is ReadFrom(bytes.NewReader(src)). It returns the count, how
// many bytes of src it left unread, and the error.
func (m *bytesModel) ReadFrom(src []byte) (total int64, left int, err error) {
	if m.closed {
		return 0, len(src), bytespool.ErrClosed
	}
	private := false
	for {
		limit := m.bs
		if m.maxLen > 0 {
			limit = min(limit, m.maxLen-len(m.data))
		}
		if limit <= 0 {
			if len(src) > 0 {
				return total, len(src), bytespool.ErrBytesCapacityTooSmall
			}
			return total, 0, nil
		}
		if r := m.room(); !private && r > 0 {
			// The room of the last block first, with no new block.
			if len(src) == 0 {
				return total, 0, nil
			}
			n := min(limit, r, len(src))
			m.fill(src[:n])
			src = src[n:]
			total += int64(n)
			m.check()
			continue
		}
		if !private {
			if m.tooBig(len(m.blocks) + 1) {
				if len(src) > 0 {
					return total, len(src), bytespool.ErrPoolTooSmall
				}
				return total, 0, nil
			}
			private = true
			continue
		}
		if len(src) == 0 { // bytes.Reader at its end: 0, io.EOF
			return total, 0, nil
		}
		n := min(limit, len(src))
		chunk := src[:n]
		src = src[n:]
		rest := m.fill(chunk)
		if len(rest) > 0 {
			m.blocks = append(m.blocks, extent{0, len(rest)})
			m.data = append(m.data, rest...)
			private = false
		}
		total += int64(n)
		m.check()
	}
}

// WriteTo is WriteTo into a writer that takes everything.
func (m *bytesModel) WriteTo() ([]byte, error) {
	if m.closed {
		return nil, bytespool.ErrClosed
	}
	out := m.data
	m.data, m.blocks = nil, nil
	return out, nil
}

// HandTo is WriteTo into dst, a Bytes of the same pool, which takes the
// blocks over whole (or, for dst == m, gives them back): all or nothing,
// within dst's maxLen. dst's last block keeps whatever room it had, in the
// middle of the list, and writes go to the room of the new last block.
func (m *bytesModel) HandTo(dst *bytesModel) (int64, error) {
	n := len(m.data)
	switch {
	case m.closed:
		return 0, bytespool.ErrClosed
	case n == 0, dst == m:
		return int64(n), nil
	case dst.closed:
		return 0, bytespool.ErrClosed
	case dst.maxLen > 0 && len(dst.data)+n > dst.maxLen:
		return 0, bytespool.ErrBytesCapacityTooSmall
	}
	dst.data = append(dst.data, m.data...)
	dst.blocks = append(dst.blocks, m.blocks...)
	m.data, m.blocks = nil, nil
	dst.check()
	return int64(n), nil
}

func (m *bytesModel) Reset() {
	if !m.closed {
		m.data, m.blocks = nil, nil
	}
}

// Close is Close (Free).
func (m *bytesModel) Close() error {
	if m.closed {
		return bytespool.ErrClosed
	}
	m.closed = true
	m.data, m.blocks = nil, nil
	return nil
}

// check verifies the model's own invariants.
func (m *bytesModel) check() {
	n := 0
	for i, b := range m.blocks {
		if b.off < 0 || b.off >= b.end || b.end > m.bs {
			panic(fmt.Sprintf("model: bad block %d: %+v (bs %d)", i, b, m.bs))
		}
		n += b.end - b.off
	}
	if n != len(m.data) {
		panic(fmt.Sprintf("model: blocks hold %d bytes, data %d", n, len(m.data)))
	}
	if m.capBlocks > 0 && len(m.blocks) > m.capBlocks {
		panic(fmt.Sprintf("model: %d blocks over cap %d", len(m.blocks), m.capBlocks))
	}
}

// sameErr reports whether got is what the model wants: nil for nil, or
// errors.Is.
func sameErr(got, want error) bool {
	if want == nil || got == nil {
		return got == want
	}
	return errors.Is(got, want)
}
