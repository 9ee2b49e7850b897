module github.com/zjj/bytespool/bench

go 1.26.0

replace github.com/zjj/bytespool => ../

require (
	github.com/djherbis/buffer v1.2.1
	github.com/djherbis/nio/v3 v3.0.1
	github.com/libp2p/go-buffer-pool v0.1.0
	github.com/oxtoacart/bpool v0.0.0-20190530202638-03653db5a59c
	github.com/smallnest/ringbuffer v0.2.1
	github.com/valyala/bytebufferpool v1.0.0
	github.com/zjj/bytespool v0.0.0-00010101000000-000000000000
	golang.org/x/sync v0.25.0
	gonum.org/v1/plot v0.17.0
)

require (
	codeberg.org/go-fonts/liberation v0.5.0 // indirect
	codeberg.org/go-latex/latex v0.2.0 // indirect
	codeberg.org/go-pdf/fpdf v0.11.1 // indirect
	git.sr.ht/~sbinet/gg v0.7.0 // indirect
	github.com/ajstarks/svgo v0.0.0-20211024235047-1546f124cd8b // indirect
	github.com/golang/freetype v0.0.0-20170609003504-e2365dfdc4a0 // indirect
	go.uber.org/atomic v1.11.0 // indirect
	golang.org/x/image v0.30.0 // indirect
	golang.org/x/text v0.28.0 // indirect
)
