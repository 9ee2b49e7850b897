package fuzz

// FuzzInterleavings seeds. Header: shape (goroutines 2+v%3, bit 2 live,
// bit 3 own maxLen in free mode), block size index, slack, record size
// (1 + (lo|hi<<8)%300), own maxLen selector.
var interleaveSeeds = func() []seed {
	ow := func(g byte, s uint16) op { return mk(iopOwnWrite, g, s) }
	ows := func(g byte, s uint16) op { return mk(iopOwnWriteString, g, s) }
	or := func(g byte, s uint16) op { return mk(iopOwnRead, g, s) }
	orb := func(g byte) op { return mk(iopOwnReadByte, g, 0) }
	owt := func(g byte) op { return mk(iopOwnWriteTo, g, 0) }
	ors := func(g byte) op { return mk(iopOwnReset, g, 0) }
	sw := func(g byte) op { return mk(iopSharedWrite, g, 0) }
	sr := func(s uint16) op { return mk(iopSharedRead, 0, s) }
	swt := mk(iopSharedWriteTo, 0, 0)
	srb := mk(iopSharedReadByte, 0, 0)
	ibs := func(bs int) byte {
		for i, v := range interleaveBlockSizes {
			if v == bs {
				return byte(i)
			}
		}
		panic("no such block size")
	}
	rec := func(r int) (byte, byte) { return byte((r - 1) & 0xff), byte((r - 1) >> 8) }
	head := func(shape byte, bs int, slack byte, r int, ownMaxLen byte) []byte {
		lo, hi := rec(r)
		return []byte{shape, ibs(bs), slack, lo, hi, ownMaxLen}
	}
	// shape returns the header byte for the number of goroutines, live
	// mode, and own maxLen in free mode.
	shape := func(goroutines int, live, ownMaxLen bool) byte {
		for v := 0; v < 256; v++ {
			b := byte(v)
			if 2+int(b)%3 == goroutines && (b>>2&1 == 1) == live && (b>>3&1 == 1) == ownMaxLen {
				return b
			}
		}
		panic("no shape")
	}
	// rounds interleaves the ops of each goroutine in turn.
	rounds := func(n int, per ...func(i int) []op) []op {
		var ops []op
		for i := range n {
			for _, f := range per {
				ops = append(ops, f(i)...)
			}
		}
		return ops
	}
	return []seed{
		{"live-2g-bs1-rec10", head(shape(2, true, true), 1, 0, 10, 16), rounds(6,
			func(i int) []op { return []op{sw(1), ow(1, small(i%5)), or(1, small(2))} },
			func(i int) []op { return []op{sr(small(3 + i)), orb(0)} },
		)},
		{"free-3g-rec-is-one-block-cap1", head(shape(3, false, false), 8, 0, 8, 0), rounds(5,
			func(i int) []op { return []op{sw(1), sw(1), ow(1, small(3)), or(1, small(8))} },
			func(i int) []op { return []op{sw(2), ows(2, small(0)), sw(2), owt(2)} },
			func(i int) []op { return []op{sr(blocks(1, 0)), srb} },
		)},
		{"live-4g-bs4096-rec300", head(shape(4, true, true), 4096, 2, 300, 1|2<<2), rounds(4,
			func(i int) []op { return []op{sw(1), ow(1, blocks(1, 0)), ows(1, blocks(1, 1))} },
			func(i int) []op { return []op{sw(2), sw(2), or(2, bytesN(500))} },
			func(i int) []op { return []op{ow(3, blocks(2, 7)), sw(3), ors(3)} },
			func(i int) []op { return []op{sr(bytesN(150)), sr(blocks(1, 0))} },
		)},
		{"free-3g-two-records-shared-waits", head(shape(3, false, false), 8, 1, 8, 0), rounds(6,
			func(i int) []op { return []op{sw(1), sw(1), sw(1), ow(1, small(2)), or(1, small(2))} },
			func(i int) []op { return []op{sw(2), sw(2), ow(2, small(8)), owt(2)} },
			func(i int) []op { return []op{sr(small(5)), sr(small(3)), orb(0)} },
		)},
		{"free-rec1-bs2", head(shape(2, false, false), 2, 1, 1, 0), rounds(8,
			func(i int) []op { return []op{sw(1), sw(1), ow(1, small(1)), orb(1)} },
			func(i int) []op {
				if i%3 == 2 {
					return []op{swt}
				}
				return []op{sr(small(1))}
			},
		)},
		{"free-own-maxlen-4g-bs3", head(shape(4, false, true), 3, 5, 7, 3), rounds(5,
			func(i int) []op { return []op{ow(1, blocks(1, 2)), sw(1), or(1, small(4))} },
			func(i int) []op { return []op{ow(2, small(i)), ow(2, blocks(2, 0)), sw(2), owt(2)} },
			func(i int) []op { return []op{sw(3), ows(3, small(7)), orb(3)} },
			func(i int) []op { return []op{sr(small(5)), ow(0, small(2)), sw(0)} },
		)},
		{"live-3g-rec-exact-block", head(shape(3, true, true), 16, 0, 16, 4), rounds(8,
			func(i int) []op { return []op{sw(1), ow(1, blocks(1, 0))} },
			func(i int) []op { return []op{sw(2), ow(2, small(15)), or(2, blocks(1, 0))} },
			func(i int) []op { return []op{sr(blocks(1, -1)), srb} },
		)},
		{"free-circular-wait", head(shape(2, false, false), 64, 1, 64, 0), []op{
			// Both own Bytes take most of a 2-block pool, then each
			// wants another block: one of them times out.
			ow(0, blocks(1, 0)), ow(1, blocks(1, 0)), ow(0, small(1)), ow(1, small(1)),
			sw(1), sr(small(10)), owt(0), owt(1), sw(1), sw(0), swt,
		}},
	}
}()
