// Command gospin burns CPU a few calls deep, in the main goroutine and in a
// second one, so a sampled stack has a known shape.
package main

import (
	"fmt"
	"sync"
)

var sink uint64

//go:noinline
func busy(n int) uint64 {
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		x ^= x >> 29
	}
	return x
}

//go:noinline
func level3(n int) uint64 { return busy(n) + 1 }

//go:noinline
func level2(n int) uint64 { return level3(n) + 1 }

//go:noinline
func level1(n int) uint64 { return level2(n) + 1 }

func main() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sink += level1(20000000) }()
	sink += level1(40000000)
	wg.Wait()
	fmt.Println(sink != 0)
}
