// Package samplestest holds the tests of the sample Lambda extensions in
// testdata/samples (built into build/samples by `make samples`). The samples
// are the subjects every later initprof test profiles and the ground truth
// those tests compare against, so their protocol and their CLOCK_MONOTONIC
// checkpoints are checked here, against a minimal fake Lambda platform, before
// anyone relies on them. The package has no non-test code.
package samplestest
