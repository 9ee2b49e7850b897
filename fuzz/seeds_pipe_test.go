package fuzz

// FuzzPipe seeds. Header: block size index, maxBuffered selector, pool cap
// selector, close variant, flags, K (2 bytes). Ops with kind 0 are writer
// chunks (aux picks the writer), kind 1 reader chunks.
var pipeSeeds = func() []seed {
	wc := func(w byte, s uint16) op { return mk(0, w, s) }
	rc := func(s uint16) op { return mk(1, 0, s) }
	pbs := func(bs int) byte {
		for i, v := range pipeBlockSizes {
			if v == bs {
				return byte(i)
			}
		}
		panic("no such block size")
	}
	head := func(bs int, mbSel, capSel byte, variant int, flags byte, k int) []byte {
		return []byte{pbs(bs), mbSel, capSel, byte(variant), flags, byte(k), byte(k >> 8)}
	}
	var alternating []op // 1 byte, a block, 1 byte, a block, ...
	for i := range 16 {
		alternating = append(alternating, wc(0, small(1)), wc(0, blocks(1, 0)))
		if i%4 == 0 {
			alternating = append(alternating, rc(blocks(1, 0)))
		}
	}
	return []seed{
		{"maxbuffered-under-one-block", head(64, 1|9<<2, 0, pcWriterClose, 0, 0), []op{ // NewPipe(10)
			wc(0, small(0)), rc(small(3)), wc(0, small(5)), rc(small(0)), wc(0, blocks(1, 0)), rc(small(7)),
			wc(0, bytesN(100)), rc(blocks(1, 0)), wc(0, small(0)), wc(0, small(1)), rc(small(1)),
		}},
		{"pool-cap1-unbounded-closewitherror", head(8, 0, 1, pcWriterCloseWithError, 0, 0), []op{
			wc(0, blocks(3, 7)), rc(small(3)), wc(0, small(1)), rc(blocks(2, 0)), wc(0, blocks(1, 0)),
			wc(0, blocks(1, 1)), rc(small(15)), wc(0, small(0)), rc(small(1)),
		}},
		{"bs1-readfrom-eof-with-last", head(1, 2, 0, pcWriterCloseWithNil, pfReadFrom|pfEOFWithLast, 0), []op{ // NewPipe(1)
			wc(0, small(3)), rc(small(2)), wc(0, small(0)), wc(0, small(1)), rc(small(1)), wc(0, bytesN(40)),
		}},
		{"reader-close-midway", head(16, 2|1<<2, 0, pcReaderClose, 0, 50), []op{ // NewPipe(32)
			wc(0, small(15)), wc(0, blocks(1, 4)), rc(small(7)), wc(0, blocks(3, 0)), rc(blocks(1, 0)),
			wc(0, small(9)), rc(small(0)), wc(0, blocks(2, 0)), rc(small(3)),
		}},
		{"reader-closewitherror-writer-blocked", head(7, 2, 0, pcReaderCloseWithError, 0, 3), []op{ // NewPipe(7)
			wc(0, blocks(3, 7)), wc(0, blocks(2, 0)), rc(small(2)), rc(small(5)),
		}},
		{"reader-close-nil-two-writers-readfrom", head(3, 3|5<<2, 2|1<<2, pcReaderCloseWithNil, pfTwoWriters|pfReadFrom, 40), []op{
			wc(0, small(5)), wc(1, small(7)), rc(small(2)), wc(0, blocks(2, 1)), wc(1, small(1)), rc(small(9)),
			wc(1, blocks(3, 0)), wc(0, small(0)), rc(small(4)), wc(0, small(13)), wc(1, small(6)),
		}},
		{"two-writers-writeto", head(100, 2|1<<2, 0, pcWriterClose, pfTwoWriters|pfWriteTo, 0), []op{ // NewPipe(200)
			wc(0, bytesN(300)), wc(1, bytesN(199)), wc(0, blocks(2, 0)), wc(1, blocks(2, 1)), wc(0, small(1)),
			wc(1, small(0)), wc(0, bytesN(511)), wc(1, blocks(3, 7)),
		}},
		{"readfrom-short-reads-block-bound", head(64, 2|3<<2, 0, pcWriterClose, pfReadFrom|pfLateReader, 0), alternating}, // NewPipe(256)
		{"write-short-writes-block-bound", head(64, 2|3<<2, 0, pcWriterCloseWithError, pfWriteTo|pfLateReader, 0), alternating},
		{"plain-read-bs4096-cap2", head(4096, 0, 2, pcWriterClose, pfPlainRead, 0), []op{
			wc(0, blocks(3, 7)), rc(bytesN(500)), wc(0, blocks(2, 0)), rc(blocks(3, 0)), wc(0, small(1)),
		}},
		{"empty-writer-close", head(2, 1, 0, pcWriterClose, 0, 0), nil},
		{"empty-reader-close-k0", head(2, 1, 1, pcReaderClose, 0, 0), []op{wc(0, small(4)), rc(small(1))}},
		{"writeto-closewitherror-cap1", head(512, 1|60<<2, 1, pcWriterCloseWithError, pfWriteTo|pfReadFrom, 0), []op{
			wc(0, blocks(2, 3)), wc(0, small(0)), wc(0, bytesN(511)), wc(0, blocks(1, -1)),
		}},
	}
}()
