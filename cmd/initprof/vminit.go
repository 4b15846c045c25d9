package main

import "github.com/initprof/initprof/container/vm"

// In the arm64 microVM (container/vm), the kernel starts this binary as /init,
// PID 1. It then only prepares the machine and runs the job as a child
// initprof: cilium/ebpf's package init() has already probed /proc/self/mountinfo
// here, before /proc was mounted, and cached that failure for this process.
// vm.GuestMain never returns (it powers the VM off).
func init() {
	if vm.IsGuestInit() {
		vm.GuestMain()
	}
}
