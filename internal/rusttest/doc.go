// Package rusttest holds the tests of rustext, the bottlecap-shaped Rust sample
// extension in testdata/rustext, and of its linker-flag variants (built into
// build/samples by `make -C testdata/rustext`). initprof compare's Rust
// comparisons are only as good as these builds: each must speak the Lambda
// protocol, print CLOCK_MONOTONIC checkpoints that hold against the test's own
// clock, and really carry the ELF property its flag promises. The package has
// no non-test code.
package rusttest
