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
)

require (
	go.uber.org/atomic v1.11.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
