module github.com/zjj/bytespool

go 1.24

require (
	github.com/google/gofuzz v1.2.0 // indirect
	github.com/stretchr/testify v1.11.1 // indirect
	go.uber.org/atomic v1.11.0 // indirect
)
