//go:build race

package slab

func init() { raceEnabled = true }
