package fuzz

// FuzzHandOver seeds. Header: block size selector, maxLen selectors of
// Bytes 0 and 1 (see maxLenFor). An op's aux: bit 0 the Bytes it works on,
// bit 1 the Bytes a hand-over writes to.
var handOverSeeds = func() []seed {
	w := func(x byte, s uint16) op { return mk(hopWrite, x, s) }
	r := func(x byte, s uint16) op { return mk(hopRead, x, s) }
	rb := func(x byte) op { return mk(hopReadByte, x, 0) }
	rf := func(x byte, s uint16) op { return mk(hopReadFrom, x, s) }
	hand := func(from, to byte) op { return mk(hopHandTo, from|to<<1, 0) }
	wt := func(x byte) op { return mk(hopWriteTo, x, 0) }
	reset := func(x byte) op { return mk(hopReset, x, 0) }
	free := func(x byte) op { return mk(hopClose, x, 0) }
	head := func(bs int, maxLenA, maxLenB byte) []byte { return []byte{blockSizeSel(bs), maxLenA, maxLenB} }
	return []seed{
		{"bs16-mid-block-both-ways", head(16, 0, 0), []op{
			w(1, blocks(1, 3)), w(0, blocks(3, 2)), r(0, small(5)), hand(0, 1), w(1, small(4)),
			rb(1), r(1, small(7)), w(0, small(9)), hand(1, 0), r(0, bytesN(40)), wt(0),
		}},
		{"bs7-itself-and-readfrom", head(7, 0, 0), []op{
			w(0, small(10)), hand(0, 0), rf(0, small(12)), r(0, small(3)), hand(0, 0), rf(1, small(5)),
			hand(1, 0), hand(0, 0), r(0, bytesN(30)), hand(0, 1), wt(1),
		}},
		{"bs16-over-maxlen", head(16, 0, 1+4*9), []op{ // Bytes 1 holds at most 10 bytes
			w(1, small(4)), w(0, small(7)), hand(0, 1), w(0, small(0)), r(0, small(1)), hand(0, 1),
			r(1, small(15)), hand(0, 1), w(0, small(5)), hand(0, 1),
		}},
		{"bs1-freed", head(1, 0, 0), []op{
			w(0, small(3)), w(1, small(2)), free(1), hand(0, 1), hand(1, 0), reset(0), hand(0, 1),
			w(0, small(2)), free(0), hand(0, 0), wt(0),
		}},
	}
}()
