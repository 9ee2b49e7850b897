module github.com/zjj/bytespool

go 1.24

require (
	github.com/google/gofuzz v1.2.0
	github.com/stretchr/testify v1.11.1
	go.uber.org/atomic v1.11.0
)

require (
	github.com/davecgh/go-spew v1.1.1 // indirect
	github.com/pmezard/go-difflib v1.0.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
