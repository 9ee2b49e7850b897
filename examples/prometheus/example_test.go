package bytespoolprom_test

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zjj/bytespool"
	bytespoolprom "github.com/zjj/bytespool/examples/prometheus"
)

// Register a collector for each pool, labelled so their metrics differ.
func Example() {
	pool := bytespool.NewBytesPool(64<<20, 4096)
	prometheus.MustRegister(bytespoolprom.New(pool, prometheus.Labels{"pool": "uploads"}))
	// Serve prometheus.DefaultGatherer with promhttp.Handler() as usual.
}
