// Package stats holds the small, pure statistics initprof reports with: quantiles
// and five-number summaries for one build, and the rank tests that say whether two
// builds really differ (Mann–Whitney U, Hodges–Lehmann shift with a Moses
// confidence interval).
//
// Everything here is distribution-free on purpose: cold-start times are skewed,
// multi-modal and full of outliers (page-cache misses, scheduler hiccups), so means
// and t-tests would mislead. The conventions follow R's stats package (quantile
// type 7, wilcox.test) so that a user can check any number initprof prints with R.
package stats

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
)

// ErrEmpty is returned by the two-sample functions when a sample has no finite value.
var ErrEmpty = errors.New("stats: empty sample")

// Quantile returns the p-quantile (0 ≤ p ≤ 1) of xs by linear interpolation
// between order statistics: Hyndman & Fan type 7, R's quantile() default and
// NumPy's "linear" method. With n values sorted ascending, h = (n−1)·p and the
// result is x[⌊h⌋] + (h−⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]). xs is not modified and need
// not be sorted. It returns NaN for an empty xs or a p outside [0, 1].
func Quantile(xs []float64, p float64) float64 {
	if len(xs) == 0 || !(p >= 0 && p <= 1) {
		return math.NaN()
	}
	s := sorted(xs)
	return quantileSorted(s, p)
}

func quantileSorted(s []float64, p float64) float64 {
	h := float64(len(s)-1) * p
	lo := math.Floor(h)
	i := int(lo)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (h-lo)*(s[i+1]-s[i])
}

// Median is Quantile(xs, 0.5).
func Median(xs []float64) float64 { return Quantile(xs, 0.5) }

// Summary describes one distribution the way initprof prints it: the median and
// the p10–p90 band first (robust to the odd slow cold start), min/max to show
// outliers, and the mean only for JSON consumers that want it.
type Summary struct {
	N      int     `json:"n"`
	Min    float64 `json:"min"`
	P10    float64 `json:"p10"`
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	Max    float64 `json:"max"`
	Mean   float64 `json:"mean"`
}

// Summarize computes the Summary of xs (quantiles by type 7). An empty xs gives
// the zero Summary (N == 0), which callers print as "n/a".
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := sorted(xs)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return Summary{
		N:      len(s),
		Min:    s[0],
		P10:    quantileSorted(s, 0.10),
		Median: quantileSorted(s, 0.50),
		P90:    quantileSorted(s, 0.90),
		Max:    s[len(s)-1],
		Mean:   sum / float64(len(s)),
	}
}

// ExactLimit is the sample size below which (both samples, and no ties) the exact
// null distribution of U is used, as R's wilcox.test does ("less than 50 finite
// values"). Above it, or with ties, the normal approximation is used.
const ExactLimit = 50

// MWU is the result of a two-sided Mann–Whitney U (Wilcoxon rank-sum) test.
type MWU struct {
	// U counts the pairs (a_i, b_j) with a_i > b_j, ties counting ½. It equals
	// R's W from wilcox.test(a, b) and SciPy's U1 from mannwhitneyu(a, b).
	U float64 `json:"u"`
	// P is the two-sided p-value.
	P float64 `json:"p"`
	// Exact says P comes from the exact null distribution; otherwise it comes from
	// the normal approximation with tie and continuity corrections, and Z is set.
	Exact bool    `json:"exact"`
	Z     float64 `json:"z,omitempty"`
	// Ties says the pooled sample has tied values.
	Ties bool `json:"ties"`
}

// MannWhitneyU tests whether a and b come from the same distribution against the
// two-sided alternative, exactly as R's wilcox.test(a, b) with its defaults:
//
//   - no ties and both samples smaller than ExactLimit: the exact distribution of
//     U under H0 (all C(m+n, m) rankings equally likely), p = min(1, 2·P(U ≤ u))
//     for u ≤ mn/2, else min(1, 2·P(U ≥ u));
//   - otherwise the normal approximation: mean mn/2, variance
//     mn/12·((N+1) − Σ(t³−t)/(N(N−1))) over tie groups of size t, and a
//     continuity correction of ½ towards the mean.
//
// Non-finite values are dropped first; a sample left empty gives ErrEmpty.
func MannWhitneyU(a, b []float64) (MWU, error) { return mannWhitneyU(a, b, false) }

// mannWhitneyU is MannWhitneyU; forceNormal skips the exact distribution so the
// tests can hold the approximation against published asymptotic values.
func mannWhitneyU(a, b []float64, forceNormal bool) (MWU, error) {
	a, b = finite(a), finite(b)
	if len(a) == 0 || len(b) == 0 {
		return MWU{}, ErrEmpty
	}
	m, n := len(a), len(b)
	ranks, tieTerm := rankPooled(a, b)
	ra := 0.0
	for i := 0; i < m; i++ {
		ra += ranks[i]
	}
	u := ra - float64(m*(m+1))/2
	res := MWU{U: u, Ties: tieTerm > 0}
	mn := float64(m * n)
	if !forceNormal && !res.Ties && m < ExactLimit && n < ExactLimit {
		d := newUDist(m, n)
		var p float64
		if u > mn/2 {
			p = d.upper(int(math.Round(u)))
		} else {
			p = d.cdf(int(math.Round(u)))
		}
		res.P = math.Min(1, 2*p)
		res.Exact = true
		return res, nil
	}
	sigma := uSigma(m, n, tieTerm)
	if sigma == 0 {
		// Every value is the same: no evidence of any difference.
		res.P = 1
		return res, nil
	}
	z := u - mn/2
	z -= math.Copysign(0.5, z) * boolToF(z != 0)
	z /= sigma
	res.Z = z
	res.P = math.Min(1, math.Erfc(math.Abs(z)/math.Sqrt2))
	return res, nil
}

// Shift is a Hodges–Lehmann estimate of how far b sits from a, with its
// distribution-free confidence interval.
type Shift struct {
	// Estimate is the median of the m·n pairwise differences b_j − a_i: positive
	// means b is slower.
	Estimate float64 `json:"estimate"`
	// Lo and Hi bound the confidence interval.
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
	// Level is the confidence the interval actually achieves (≥ the requested 95 %
	// when exact; the nominal level when approximate).
	Level float64 `json:"level"`
	// Exact says the interval's order statistics come from the exact U
	// distribution (no ties, both samples smaller than ExactLimit).
	Exact bool `json:"exact"`
}

// Confidence is the nominal confidence level of every interval initprof reports.
const Confidence = 0.95

// HodgesLehmann estimates the location shift of b relative to a as the median of
// all pairwise differences b_j − a_i, and gives a 95 % confidence interval from
// the order statistics of those differences (Moses' method; Bauer 1972; Hollander
// & Wolfe, Nonparametric Statistical Methods, §4.3):
//
//   - exact case (no ties, both samples smaller than ExactLimit), as R's
//     wilcox.test(b, a, conf.int = TRUE): k = qwilcox(0.025, n, m) (the smallest k
//     with P(U ≤ k) ≥ 0.025, at least 1), interval [D(k), D(mn−k+1)] over the
//     ascending differences D(1..mn); Level is 1 − 2·P(U ≤ k−1);
//   - otherwise: k = round(mn/2 − z₀.₉₇₅·σ_U) with the tie-corrected σ_U, clamped to
//     [1, mn/2]. R instead inverts the asymptotic test numerically (uniroot), so its
//     large-sample bounds can differ from these by about one gap between
//     neighbouring differences.
//
// Non-finite values are dropped first; a sample left empty gives ErrEmpty.
func HodgesLehmann(a, b []float64) (Shift, error) {
	a, b = finite(a), finite(b)
	if len(a) == 0 || len(b) == 0 {
		return Shift{}, ErrEmpty
	}
	m, n := len(a), len(b)
	d := make([]float64, 0, m*n)
	for _, y := range b {
		for _, x := range a {
			d = append(d, y-x)
		}
	}
	sort.Float64s(d)
	mn := m * n
	res := Shift{Estimate: quantileSorted(d, 0.5)}
	_, tieTerm := rankPooled(a, b)
	alpha := 1 - Confidence
	var k int
	if tieTerm == 0 && m < ExactLimit && n < ExactLimit {
		dist := newUDist(m, n)
		k = dist.quantile(alpha / 2)
		if k == 0 {
			k = 1
		}
		res.Level = 1 - 2*dist.cdf(k-1)
		res.Exact = true
	} else {
		sigma := uSigma(m, n, tieTerm)
		k = int(math.Round(float64(mn)/2 - normalQuantile(1-alpha/2)*sigma))
		if k < 1 {
			k = 1
		}
		if k > mn/2 && mn > 1 {
			k = mn / 2
		}
		res.Level = Confidence
	}
	if k > mn {
		k = mn
	}
	res.Lo = d[k-1]
	res.Hi = d[mn-k]
	return res, nil
}

// Alpha is the significance level behind every "~" initprof prints, as benchstat's.
const Alpha = 0.05

// Mark is the benchstat-style verdict on a change: "~" when the difference is not
// significant (p ≥ alpha, or no baseline to scale by), otherwise the shift as a
// signed percentage of the baseline, e.g. "-12.40%".
func Mark(shift, baseline, p, alpha float64) string {
	if math.IsNaN(p) || p >= alpha || baseline == 0 || math.IsNaN(shift) {
		return "~"
	}
	return fmt.Sprintf("%+.2f%%", 100*shift/baseline)
}

// FormatP prints a p-value the way the reports quote it: "p<0.001" below 0.001,
// otherwise "p=0.041" with three decimals.
func FormatP(p float64) string {
	if math.IsNaN(p) {
		return "p=n/a"
	}
	if p < 0.001 {
		return "p<0.001"
	}
	return fmt.Sprintf("p=%.3f", p)
}

// rankPooled ranks a then b in the pooled sample (mid-ranks for ties) and returns
// the ranks in that order plus Σ(t³−t) over the tie groups.
func rankPooled(a, b []float64) ([]float64, float64) {
	n := len(a) + len(b)
	idx := make([]int, n)
	val := make([]float64, n)
	copy(val, a)
	copy(val[len(a):], b)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return val[idx[i]] < val[idx[j]] })
	ranks := make([]float64, n)
	tie := 0.0
	for i := 0; i < n; {
		j := i
		for j+1 < n && val[idx[j+1]] == val[idx[i]] {
			j++
		}
		r := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			ranks[idx[k]] = r
		}
		if t := float64(j - i + 1); t > 1 {
			tie += t*t*t - t
		}
		i = j + 1
	}
	return ranks, tie
}

// uSigma is the standard deviation of U under H0 with the tie correction.
func uSigma(m, n int, tieTerm float64) float64 {
	N := float64(m + n)
	v := float64(m*n) / 12 * ((N + 1) - tieTerm/(N*(N-1)))
	if v <= 0 {
		return 0
	}
	return math.Sqrt(v)
}

// uDist is the exact null distribution of U for sample sizes m and n: freq[k] is
// the number of the C(m+n, m) rankings that give U = k.
type uDist struct {
	freq  []float64
	total float64
}

// newUDist counts rankings with the recurrence f(m,n,k) = f(m−1,n,k−n) + f(m,n−1,k)
// (the largest pooled value belongs to a, adding n to U, or to b). Only additions
// of non-negative counts, so float64 stays accurate far beyond 2⁵³ in relative terms.
func newUDist(m, n int) *uDist {
	if m > n {
		m, n = n, m // the distribution is symmetric in (m, n)
	}
	key := [2]int{m, n}
	if d, ok := uDists.Load(key); ok {
		return d.(*uDist)
	}
	d := buildUDist(m, n)
	uDists.Store(key, d)
	return d
}

// uDists caches distributions by size: compare tests the same sizes for every
// phase. Entries are never modified after they are stored.
var uDists sync.Map

func buildUDist(m, n int) *uDist {
	// prev[j] holds f(i−1, j, ·); cur[j] holds f(i, j, ·).
	prev := make([][]float64, n+1)
	for j := range prev {
		prev[j] = []float64{1}
	}
	for i := 1; i <= m; i++ {
		cur := make([][]float64, n+1)
		cur[0] = []float64{1}
		for j := 1; j <= n; j++ {
			f := make([]float64, i*j+1)
			for k, c := range prev[j] { // a holds the largest: U += j
				f[k+j] += c
			}
			for k, c := range cur[j-1] { // b holds the largest
				f[k] += c
			}
			cur[j] = f
		}
		prev = cur
	}
	freq := prev[n]
	total := 0.0
	for _, c := range freq {
		total += c
	}
	return &uDist{freq: freq, total: total}
}

// cdf is P(U ≤ k).
func (d *uDist) cdf(k int) float64 {
	if k < 0 {
		return 0
	}
	s := 0.0
	for i := 0; i <= k && i < len(d.freq); i++ {
		s += d.freq[i]
	}
	return math.Min(1, s/d.total)
}

// upper is P(U ≥ k).
func (d *uDist) upper(k int) float64 {
	s := 0.0
	for i := max(k, 0); i < len(d.freq); i++ {
		s += d.freq[i]
	}
	return math.Min(1, s/d.total)
}

// quantile is R's qwilcox: the smallest k with P(U ≤ k) ≥ p.
func (d *uDist) quantile(p float64) int {
	s := 0.0
	for k, c := range d.freq {
		s += c
		// A relative tolerance keeps exact hits (p = 0.025 exactly) on the right side.
		if s/d.total >= p*(1-1e-12) {
			return k
		}
	}
	return len(d.freq) - 1
}

// normalQuantile is the standard normal quantile, by bisection on Erfc: precise to
// ~1e-12 and only ever called with a handful of fixed levels.
func normalQuantile(p float64) float64 {
	lo, hi := -40.0, 40.0
	for i := 0; i < 200; i++ {
		mid := (lo + hi) / 2
		if 0.5*math.Erfc(-mid/math.Sqrt2) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

func sorted(xs []float64) []float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s
}

func finite(xs []float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	return out
}

func boolToF(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
