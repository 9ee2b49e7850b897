package fuzz

// FuzzRing seeds. Header: capacity selector, workers (bit 7: goroutine 0
// only pops), values per goroutine - 1, pop period selector.
var ringSeeds = func() []seed {
	push := mk(ropPush, 0, 0)
	pop := mk(ropPop, 0, 0)
	pushN := func(n int) op { return mk(ropPushN, 0, uint16(n)) }
	popN := func(n int) op { return mk(ropPopN, 0, uint16(n)) }
	return []seed{
		{"cap1", []byte{0, 0, 3, 0}, []op{push, push, pop, pop, push, pop, push, push, pop}},
		{"cap3-rounds-to-4-wrap", []byte{2, 1, 40, 1}, []op{
			pushN(5), popN(2), pushN(3), popN(6), pushN(4), pop, push, popN(1), pushN(2),
		}},
		{"cap64-fill-exactly", []byte{63, 2, 255, 3}, []op{pushN(64), push, popN(64), pop, pushN(65), popN(30)}},
		{"cap65-only-popper", []byte{64, 0x80 | 2, 200, 3}, []op{pushN(100), popN(7), pushN(10)}},
		{"cap4000-many", []byte{254, 1, 255, 0}, []op{pushN(8000), popN(4096), pushN(100)}},
		{"cap2-contended", []byte{1, 2, 255, 3}, nil},
	}
}()
