package bytespool

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The collector marks every live heap object and scans every pointerful
// one at every cycle, so a pool that holds its data in many Bytes pays
// for each Bytes' state, and for each slab's lists, at every cycle. These
// tests hold the layouts that keep that small (see state and slabLists).

// pointerWords returns the offsets of the words of a value of type t that
// can hold pointers.
func pointerWords(t reflect.Type, base uintptr) []uintptr {
	switch t.Kind() {
	case reflect.Pointer, reflect.UnsafePointer, reflect.Map, reflect.Chan, reflect.Func, reflect.String, reflect.Slice:
		return []uintptr{base}
	case reflect.Interface:
		return []uintptr{base, base + unsafe.Sizeof(uintptr(0))}
	case reflect.Struct:
		var words []uintptr
		for i := range t.NumField() {
			f := t.Field(i)
			words = append(words, pointerWords(f.Type, base+f.Offset)...)
		}
		return words
	case reflect.Array:
		var words []uintptr
		for i := range t.Len() {
			words = append(words, pointerWords(t.Elem(), base+uintptr(i)*t.Elem().Size())...)
		}
		return words
	}
	return nil
}

// TestStateLayout: a state fits the 128-byte size class, and its only
// pointers are its first four words: rare, and the chain's pool, budget
// and last link. What only some Bytes use is behind rare.
func TestStateLayout(t *testing.T) {
	ty := reflect.TypeFor[state]()
	assert.LessOrEqual(t, ty.Size(), uintptr(128))
	w := unsafe.Sizeof(uintptr(0))
	assert.Equal(t, []uintptr{0, w, 2 * w, 3 * w}, pointerWords(ty, 0))
}

// TestSlabListsObjects: the lists of a slab are two heap objects (the lists
// and their rings) beside the array of slots and links they are given,
// whatever the number of shards.
func TestSlabListsObjects(t *testing.T) {
	for _, shards := range []int{1, 2, 4, 8} {
		for _, n := range []int{1, 64, 1000, 4096} {
			var sl *slabLists
			buf := make([]uint64, slabListsWords(n, shards))
			allocs := testing.AllocsPerRun(10, func() { sl = newSlabLists(n, shards, buf) })
			assert.Equal(t, 2.0, allocs, "%d shards, %d blocks", shards, n)
			require.Len(t, sl.rings, shards)
			require.Len(t, sl.links, n)
			for s := range sl.rings {
				assert.Equal(t, 0, sl.rings[s].Len())
				assert.GreaterOrEqual(t, sl.rings[s].Cap(), n)
			}
			// The rings and the links share one array without
			// overlapping: filling every ring leaves the links alone, and
			// the rings give back what they were given.
			full := link{next: ^uint32(0), off: ^uint32(0), end: ^uint32(0)}
			for i := range sl.links {
				sl.links[i] = full
			}
			for s := range sl.rings {
				for v := range uint32(sl.rings[s].Cap()) {
					require.True(t, sl.rings[s].Push(v))
				}
			}
			for i := range sl.links {
				require.Equal(t, full, sl.links[i], "link %d", i)
			}
			for s := range sl.rings {
				for v := range uint32(sl.rings[s].Cap()) {
					got, ok := sl.rings[s].Pop()
					require.True(t, ok)
					require.Equal(t, v, got)
				}
			}
		}
	}
	assert.Empty(t, pointerWords(reflect.TypeFor[link](), 0))
}
