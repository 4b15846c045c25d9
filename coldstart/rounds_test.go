package coldstart

import (
	"fmt"
	"testing"
)

// TestRoundOrder: every round is a permutation, a seed repeats the sequence,
// and over many rounds each build takes each position about equally often.
func TestRoundOrder(t *testing.T) {
	const n, rounds = 3, 3000
	a, b := newRoundOrder(n, 42), newRoundOrder(n, 42)
	pos := [n][n]int{}
	changed := false
	var prev []int
	for r := 0; r < rounds; r++ {
		pa := append([]int(nil), a.next()...)
		pb := b.next()
		seen := map[int]bool{}
		for i, j := range pa {
			if pb[i] != j {
				t.Fatalf("round %d: seed 42 gave %v and %v", r, pa, pb)
			}
			seen[j] = true
			pos[j][i]++
		}
		if len(seen) != n {
			t.Fatalf("round %d: %v is not a permutation", r, pa)
		}
		if prev != nil && fmt.Sprint(prev) != fmt.Sprint(pa) {
			changed = true
		}
		prev = pa
	}
	if !changed {
		t.Error("the order never changed between rounds")
	}
	for j := range pos {
		for i, k := range pos[j] {
			if k < rounds/n*8/10 || k > rounds/n*12/10 {
				t.Errorf("build %d at position %d in %d of %d rounds, want about %d", j, i, k, rounds, rounds/n)
			}
		}
	}
	if newRoundOrder(n, 0).seed == 0 {
		t.Error("seed 0 must pick a seed")
	}
}
