package coldstart

import (
	"context"
	"math/rand/v2"

	"github.com/initprof/initprof/profile"
)

// Rounds is what Interleave did.
type Rounds struct {
	// Seed repeats the run order.
	Seed uint64
}

// Interleave makes runs cold starts of each series in rounds: round i runs
// cold start i of every series still in the comparison, in a fresh random
// order (seed; 0 picks one), so drift and position effects hit every build
// alike. A series is dropped after a run that errs, or whose first init
// fails (a RELR build on an old glibc fails every time); nil series are
// skipped. done is called after each run, with the run or its error. It
// stops early, between runs, when ctx is done.
func Interleave(ctx context.Context, series []*Series, runs int, seed uint64, done func(j int, r profile.Run, err error)) Rounds {
	order := newRoundOrder(len(series), seed)
	dropped := make([]bool, len(series))
	for i := 0; i < runs && ctx.Err() == nil; i++ {
		for _, j := range order.next() {
			s := series[j]
			if s == nil || dropped[j] || ctx.Err() != nil {
				continue
			}
			r, err := s.Run(ctx, i)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				dropped[j] = true
				done(j, r, err)
				continue
			}
			if i == 0 && r.InitStatus != "success" {
				dropped[j] = true
			}
			done(j, r, nil)
		}
	}
	return Rounds{Seed: order.seed}
}

// roundOrder shuffles the builds anew for every round. Interleaving alone
// spreads slow drift over every build; shuffling also spreads position effects
// (a build that always runs right after the slowest one inherits its dirty
// caches and a busier CPU), which with a fixed order bias one build and show
// up as a "significant" shift between identical binaries.
type roundOrder struct {
	seed uint64
	rng  *rand.Rand
	perm []int
}

func newRoundOrder(n int, seed uint64) *roundOrder {
	for seed == 0 {
		seed = rand.Uint64()
	}
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	return &roundOrder{seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), perm: perm}
}

// next returns the order of the next round (valid until the next call).
func (r *roundOrder) next() []int {
	r.rng.Shuffle(len(r.perm), func(i, j int) { r.perm[i], r.perm[j] = r.perm[j], r.perm[i] })
	return r.perm
}
