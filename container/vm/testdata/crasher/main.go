// Command crasher is a guest job that crashes the guest kernel on purpose
// (sysrq 'c': a NULL dereference in the kernel), so that tests can prove a
// guest kernel crash is recognised and the VM stopped at once, instead of
// hanging until the VM timeout.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("crasher: crashing the guest kernel through /proc/sysrq-trigger")
	if err := os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0); err != nil {
		fmt.Fprintln(os.Stderr, "crasher:", err)
		os.Exit(1)
	}
	select {}
}
