// Command sleeper is a guest job that never ends, so that tests can prove the
// VM is killed (timeouts, a killed parent) rather than finishing on its own.
package main

import "time"

func main() {
	println("sleeper: sleeping")
	for {
		time.Sleep(time.Hour)
	}
}
