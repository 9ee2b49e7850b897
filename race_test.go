//go:build race

package bytespool

// raceEnabled reports whether the race detector is on. Under -race,
// sync.Pool drops one Put in four on purpose, so allocation counts are
// meaningless there.
const raceEnabled = true
