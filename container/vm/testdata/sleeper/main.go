// Command sleeper is a guest job that never ends, so that tests can prove the
// VM is killed (timeouts, a killed parent) rather than finishing on its own.
// Started as the VM's /init instead, it exits at once: a broken init.
package main

import (
	"os"
	"time"
)

func main() {
	if os.Args[0] == "/init" {
		println("sleeper: started as /init, exiting")
		os.Exit(3)
	}
	println("sleeper: sleeping")
	for {
		time.Sleep(time.Hour)
	}
}
