package bytespool

import "testing"

// The workloads of poolbench_test.go in a Bytes of a budget (nested one
// level, both with caps), and in a pool with HighWater set.

func benchBudget(b *testing.B) *Budget {
	return benchPool(b).NewBudget(32 << 20).NewBudget(16 << 20)
}

func BenchmarkBudgetSmall1KiB(b *testing.B) {
	bg := benchBudget(b)
	benchSmall(b, func() *Bytes { return bg.NewBytes(0) })
}

func BenchmarkBudgetStream2MiB(b *testing.B) {
	benchStream(b, benchBudget(b).NewBytes(0))
}

func pressureBenchPool(b *testing.B) *BytesPool {
	p, err := New(Config{MaxMemory: 64 << 20, HighWater: 48 << 20, LowWater: 32 << 20, OnPressure: func(bool) {}})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkPressureSmall1KiB(b *testing.B) {
	p := pressureBenchPool(b)
	benchSmall(b, func() *Bytes { return p.NewBytes(0) })
}

func BenchmarkPressureStream2MiB(b *testing.B) {
	benchStream(b, pressureBenchPool(b).NewBytes(0))
}
