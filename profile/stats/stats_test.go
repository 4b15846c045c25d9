package stats

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestQuantileType7(t *testing.T) {
	// Expected values are R's quantile(x, p) (type 7), which by construction is
	// x[h] interpolated at h = (n-1)p; NumPy's default "linear" method agrees.
	oneToTen := []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1} // unsorted on purpose
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"p10 of 1..10", oneToTen, 0.10, 1.9},
		{"median of 1..10", oneToTen, 0.50, 5.5},
		{"p90 of 1..10", oneToTen, 0.90, 9.1},
		{"min", oneToTen, 0, 1},
		{"max", oneToTen, 1, 10},
		{"quartile of 3 values", []float64{3, 1, 2}, 0.25, 1.5},
		{"single value", []float64{42}, 0.9, 42},
		{"odd median", []float64{5, 1, 3}, 0.5, 3},
		{"ties", []float64{2, 2, 2, 8}, 0.5, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Quantile(tc.xs, tc.p); !near(got, tc.want, 1e-12) {
				t.Errorf("Quantile(%v, %v) = %v, want %v", tc.xs, tc.p, got, tc.want)
			}
		})
	}
	for _, bad := range []struct {
		xs []float64
		p  float64
	}{{nil, 0.5}, {oneToTen, -0.1}, {oneToTen, 1.1}, {oneToTen, math.NaN()}} {
		if got := Quantile(bad.xs, bad.p); !math.IsNaN(got) {
			t.Errorf("Quantile(%v, %v) = %v, want NaN", bad.xs, bad.p, got)
		}
	}
	if oneToTen[0] != 10 {
		t.Error("Quantile sorted its input in place")
	}
}

func TestSummarize(t *testing.T) {
	got := Summarize([]float64{4, 1, 3, 2, 10})
	want := Summary{N: 5, Min: 1, P10: 1.4, Median: 3, P90: 7.6, Max: 10, Mean: 4}
	for _, f := range []struct {
		name      string
		got, want float64
	}{{"min", got.Min, want.Min}, {"p10", got.P10, want.P10}, {"median", got.Median, want.Median},
		{"p90", got.P90, want.P90}, {"max", got.Max, want.Max}, {"mean", got.Mean, want.Mean}} {
		if !near(f.got, f.want, 1e-12) {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
	if got.N != 5 {
		t.Errorf("N = %d, want 5", got.N)
	}
	if z := Summarize(nil); z.N != 0 {
		t.Errorf("Summarize(nil).N = %d, want 0", z.N)
	}
}

// R's own example for wilcox.test (?wilcox.test, "Hollander & Wolfe (1973), 69f.
// Permeability constants of the human chorioamnion"): wilcox.test(x, y) prints
// "W = 35, p-value = 0.2544"; Geyer's Stat 5601 notes
// (https://www.stat.umn.edu/geyer/old/5601/examp/ranksum.html) give the one-tailed
// P = 0.1272061 for the same data and the Hodges–Lehmann point estimate −0.305 for
// the median of the differences y_j − x_i.
var (
	hwX = []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46}
	hwY = []float64{1.15, 0.88, 0.90, 0.74, 1.21}
)

func TestMannWhitneyUPublished(t *testing.T) {
	tests := []struct {
		name        string
		a, b        []float64
		normal      bool
		wantU       float64
		wantP       float64
		tol         float64
		wantExact   bool
		wantTies    bool
		wantZ, zTol float64
	}{
		// R ?wilcox.test example, exact: W = 35, p-value = 0.2544.
		{name: "R wilcox.test example", a: hwX, b: hwY, wantU: 35, wantP: 0.2544, tol: 5e-5, wantExact: true},
		// Same data swapped: U becomes mn − U, p is unchanged (two-sided, symmetric).
		{name: "R example swapped", a: hwY, b: hwX, wantU: 15, wantP: 0.2544, tol: 5e-5, wantExact: true},
		// SciPy mannwhitneyu docs example (Conover's males/females ages): U1 = 17,
		// method="exact" p = 0.1111111111111111, method="asymptotic" p = 0.11134688653314041.
		{name: "SciPy docs exact", a: []float64{19, 22, 16, 29, 24}, b: []float64{20, 11, 17, 12},
			wantU: 17, wantP: 0.1111111111111111, tol: 1e-12, wantExact: true},
		{name: "SciPy docs asymptotic", a: []float64{19, 22, 16, 29, 24}, b: []float64{20, 11, 17, 12}, normal: true,
			wantU: 17, wantP: 0.11134688653314041, tol: 1e-12},
		// endmemo.com/r/wilcoxon.php, R output with ties ("Wilcoxon rank sum test with
		// continuity correction"): W = 51.5, p-value = 0.5966 and W = 0, p-value = 0.001364.
		{name: "R with ties", a: []float64{1, 5, 9, 24, 56, 21, 3, 7, 21, 4}, b: []float64{12, 15, 5, 9, 9, 14, 56, 22, 3, 7, 32, 5},
			wantU: 51.5, wantP: 0.5966, tol: 5e-5, wantTies: true},
		{name: "R with ties, full separation", a: []float64{1, 5, 9, 24, 56, 21, 3, 7, 21, 4}, b: []float64{1233, 4356, 987, 39999, 1111, 200000},
			wantU: 0, wantP: 0.001364, tol: 5e-7, wantTies: true},
		// NAG g08amc example results (support.nag.com, nagdoc_cl26, g08amce.r): U = 86,
		// "Normal Statistic = -2.8039" (tie-corrected, with the continuity
		// correction), "Approximate tail probability = 0.0025" (one tail; ×2 here).
		{name: "NAG g08amc", a: []float64{13, 6, 12, 7, 12, 7, 10, 7, 10, 7, 16, 7, 10, 8, 9, 8},
			b:     []float64{17, 6, 10, 8, 15, 8, 15, 10, 15, 10, 14, 10, 14, 11, 14, 11, 13, 12, 13, 12, 13, 12, 12},
			wantU: 86, wantP: 0.0050, tol: 1e-4, wantTies: true, wantZ: -2.8039, zTol: 5e-5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mannWhitneyU(tc.a, tc.b, tc.normal)
			if err != nil {
				t.Fatal(err)
			}
			if got.U != tc.wantU {
				t.Errorf("U = %v, want %v", got.U, tc.wantU)
			}
			if tc.wantP >= 0 && !near(got.P, tc.wantP, tc.tol) {
				t.Errorf("p = %.10g, want %.10g ± %g", got.P, tc.wantP, tc.tol)
			}
			if got.Exact != tc.wantExact {
				t.Errorf("Exact = %v, want %v", got.Exact, tc.wantExact)
			}
			if got.Ties != tc.wantTies {
				t.Errorf("Ties = %v, want %v", got.Ties, tc.wantTies)
			}
			if tc.zTol > 0 && !near(got.Z, tc.wantZ, tc.zTol) {
				t.Errorf("z = %v, want %v ± %v", got.Z, tc.wantZ, tc.zTol)
			}
		})
	}
}

func TestMannWhitneyUOneSidedExact(t *testing.T) {
	// Geyer's notes: lower-tailed exact P(U ≤ 15) with nx = 10, ny = 5 is 0.1272061.
	d := newUDist(10, 5)
	if got := d.cdf(15); !near(got, 0.1272061, 5e-8) {
		t.Errorf("P(U ≤ 15; 10, 5) = %.9f, want 0.1272061", got)
	}
}

// TestUDistEnumeration checks the exact distribution against brute force: every
// way to choose which m of the m+n ranks belong to a.
func TestUDistEnumeration(t *testing.T) {
	for m := 1; m <= 6; m++ {
		for n := 1; n <= 6; n++ {
			want := make([]float64, m*n+1)
			N := m + n
			for mask := 0; mask < 1<<N; mask++ {
				if popcount(mask) != m {
					continue
				}
				// U = Σ over a's ranks of (#b below it).
				u, bBelow := 0, 0
				for r := 0; r < N; r++ {
					if mask&(1<<r) != 0 {
						u += bBelow
					} else {
						bBelow++
					}
				}
				want[u]++
			}
			got := newUDist(m, n)
			for k := range want {
				if got.freq[k] != want[k] {
					t.Fatalf("m=%d n=%d: freq[%d] = %v, want %v", m, n, k, got.freq[k], want[k])
				}
			}
		}
	}
	// Large sizes stay a probability distribution (no overflow or precision loss).
	d := newUDist(49, 49)
	if got := d.cdf(49 * 49); !near(got, 1, 1e-12) {
		t.Errorf("cdf(max) for 49,49 = %v, want 1", got)
	}
	if got := d.cdf(49*49/2 - 1); !near(got, 0.5, 0.01) || got >= 0.5 {
		t.Errorf("cdf just below the centre = %v, want a bit under 0.5", got)
	}
}

func popcount(x int) int {
	c := 0
	for ; x != 0; x &= x - 1 {
		c++
	}
	return c
}

func TestHodgesLehmannPublished(t *testing.T) {
	got, err := HodgesLehmann(hwX, hwY)
	if err != nil {
		t.Fatal(err)
	}
	// Geyer: point estimate (median of y_j − x_i) = −0.305.
	if !near(got.Estimate, -0.305, 1e-9) {
		t.Errorf("estimate = %v, want -0.305", got.Estimate)
	}
	if !got.Exact {
		t.Error("no ties, n < 50: want the exact interval")
	}
	// The exact interval, rebuilt here from first principles: k is the smallest
	// count with P(U ≤ k) ≥ 2.5 %, the bounds are the k-th smallest and k-th
	// largest of the 50 differences.
	d := newUDist(10, 5)
	k := 0
	for d.cdf(k) < 0.025 {
		k++
	}
	diffs := pairDiffs(hwX, hwY)
	if got.Lo != diffs[k-1] || got.Hi != diffs[len(diffs)-k] {
		t.Errorf("CI = [%v, %v], want [%v, %v] (k=%d)", got.Lo, got.Hi, diffs[k-1], diffs[len(diffs)-k], k)
	}
	if got.Level < Confidence || got.Level > 0.99 {
		t.Errorf("achieved level = %v, want ≥ 0.95 and close to it", got.Level)
	}
	// The shift is not significant for this data (p = 0.25), so the interval must
	// contain zero: the test and the interval have to agree.
	if !(got.Lo < 0 && got.Hi > 0) {
		t.Errorf("CI [%v, %v] excludes 0 although p = 0.25", got.Lo, got.Hi)
	}
}

func pairDiffs(a, b []float64) []float64 {
	var d []float64
	for _, y := range b {
		for _, x := range a {
			d = append(d, y-x)
		}
	}
	sort.Float64s(d)
	return d
}

func TestHodgesLehmannKnown(t *testing.T) {
	tests := []struct {
		name    string
		a, b    []float64
		wantEst float64
		wantLo  float64
		wantHi  float64
	}{
		// b = a + 10: the differences are 10 + (i − j) for i, j in 1..8, so their
		// median is 10; the exact k for m = n = 8 is qwilcox(0.025, 8, 8) = 14
		// (P(U ≤ 13) = 0.0249, P(U ≤ 14) = 0.0325) giving [D(14), D(51)] = [7, 13].
		{name: "pure shift", a: []float64{1, 2, 3, 4, 5, 6, 7, 8}, b: []float64{11, 12, 13, 14, 15, 16, 17, 18},
			wantEst: 10, wantLo: 7, wantHi: 13},
		// Ties in the pooled sample force the normal interval.
		{name: "ties use the normal interval", a: []float64{1, 1, 2, 2, 3, 3, 4, 4}, b: []float64{3, 3, 4, 4, 5, 5, 6, 6},
			wantEst: 2, wantLo: 1, wantHi: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HodgesLehmann(tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Estimate != tc.wantEst {
				t.Errorf("estimate = %v, want %v", got.Estimate, tc.wantEst)
			}
			if got.Lo != tc.wantLo || got.Hi != tc.wantHi {
				t.Errorf("CI = [%v, %v], want [%v, %v]", got.Lo, got.Hi, tc.wantLo, tc.wantHi)
			}
		})
	}
}

// TestShiftFoundInNoise is the property compare relies on: a 2-unit shift buried
// in noise of a similar size is found (p < 0.01, CI covers 2), identical
// distributions are not (p ≥ 0.05), in both the exact and the large-sample regime.
func TestShiftFoundInNoise(t *testing.T) {
	for _, n := range []int{20, 30, 60} {
		rng := rand.New(rand.NewPCG(7, uint64(n)))
		noise := func() float64 { return 10 + rng.NormFloat64()*0.8 + rng.ExpFloat64()*0.5 }
		a, b, c := make([]float64, n), make([]float64, n), make([]float64, n)
		for i := range a {
			a[i], b[i], c[i] = noise(), noise()+2, noise()
		}
		mw, _ := MannWhitneyU(a, b)
		hl, _ := HodgesLehmann(a, b)
		if mw.P >= 0.01 {
			t.Errorf("n=%d: shift of 2: p = %v, want < 0.01", n, mw.P)
		}
		if !(hl.Lo <= 2 && 2 <= hl.Hi) {
			t.Errorf("n=%d: CI [%v, %v] does not contain the true shift 2", n, hl.Lo, hl.Hi)
		}
		if hl.Exact != (n < ExactLimit) {
			t.Errorf("n=%d: Exact = %v", n, hl.Exact)
		}
		mw0, _ := MannWhitneyU(a, c)
		hl0, _ := HodgesLehmann(a, c)
		if mw0.P < 0.05 {
			t.Errorf("n=%d: identical distributions: p = %v, want ≥ 0.05", n, mw0.P)
		}
		if !(hl0.Lo <= 0 && 0 <= hl0.Hi) {
			t.Errorf("n=%d: identical distributions: CI [%v, %v] excludes 0", n, hl0.Lo, hl0.Hi)
		}
		if m := Mark(hl0.Estimate, Median(a), mw0.P, Alpha); m != "~" {
			t.Errorf("n=%d: Mark for no change = %q, want ~", n, m)
		}
		if m := Mark(hl.Estimate, Median(a), mw.P, Alpha); m == "~" || m[0] != '+' {
			t.Errorf("n=%d: Mark for a slowdown = %q, want +x.xx%%", n, m)
		}
	}
}

// TestCoverage checks the interval's promise directly: over many noisy samples
// with a known shift, about 95 % of intervals cover it (never much fewer).
func TestCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const trials = 400
	for _, n := range []int{10, 60} {
		covered := 0
		for i := 0; i < trials; i++ {
			a, b := make([]float64, n), make([]float64, n)
			for j := range a {
				a[j] = rng.ExpFloat64()
				b[j] = rng.ExpFloat64() + 0.3
			}
			s, _ := HodgesLehmann(a, b)
			if s.Lo <= 0.3 && 0.3 <= s.Hi {
				covered++
			}
		}
		if frac := float64(covered) / trials; frac < 0.92 || frac > 0.99 {
			t.Errorf("n=%d: coverage %.3f, want ≈ 0.95", n, frac)
		}
	}
}

func TestDegenerate(t *testing.T) {
	if _, err := MannWhitneyU(nil, []float64{1}); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty a: err = %v, want ErrEmpty", err)
	}
	if _, err := HodgesLehmann([]float64{math.NaN()}, []float64{1}); !errors.Is(err, ErrEmpty) {
		t.Errorf("only NaN: err = %v, want ErrEmpty", err)
	}
	// All values equal: no information, p = 1, shift 0.
	same := []float64{5, 5, 5, 5, 5, 5, 5}
	mw, err := MannWhitneyU(same, same)
	if err != nil || mw.P != 1 {
		t.Errorf("identical constant samples: p = %v err = %v, want 1", mw.P, err)
	}
	hl, _ := HodgesLehmann(same, same)
	if hl.Estimate != 0 || hl.Lo != 0 || hl.Hi != 0 {
		t.Errorf("identical constant samples: shift %+v, want all 0", hl)
	}
	// One value each: exact, p = 1.
	mw, _ = MannWhitneyU([]float64{1}, []float64{2})
	if mw.P != 1 {
		t.Errorf("1 vs 1: p = %v, want 1", mw.P)
	}
	hl, _ = HodgesLehmann([]float64{1}, []float64{2})
	if hl.Estimate != 1 || hl.Lo != 1 || hl.Hi != 1 {
		t.Errorf("1 vs 1: shift %+v, want 1 [1, 1]", hl)
	}
}

func TestMarkAndFormatP(t *testing.T) {
	tests := []struct {
		shift, base, p float64
		want           string
	}{
		{-0.26, 2.0, 0.0001, "-13.00%"},
		{0.5, 10, 0.049, "+5.00%"},
		{0.5, 10, 0.05, "~"},
		{0.5, 0, 0.001, "~"},
		{0.5, 10, math.NaN(), "~"},
	}
	for _, tc := range tests {
		if got := Mark(tc.shift, tc.base, tc.p, Alpha); got != tc.want {
			t.Errorf("Mark(%v, %v, %v) = %q, want %q", tc.shift, tc.base, tc.p, got, tc.want)
		}
	}
	for p, want := range map[float64]string{0.0004: "p<0.001", 0.41: "p=0.410", 0.0012: "p=0.001"} {
		if got := FormatP(p); got != want {
			t.Errorf("FormatP(%v) = %q, want %q", p, got, want)
		}
	}
}

func TestNormalQuantile(t *testing.T) {
	for p, want := range map[float64]float64{0.975: 1.959963984540054, 0.5: 0, 0.95: 1.6448536269514722} {
		if got := normalQuantile(p); !near(got, want, 1e-9) {
			t.Errorf("normalQuantile(%v) = %v, want %v", p, got, want)
		}
	}
}
