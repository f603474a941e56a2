package testenv

import "runtime"

// HeapAfterGC is the live heap once a collection has run: what a test of
// retained memory compares before and after.
func HeapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
