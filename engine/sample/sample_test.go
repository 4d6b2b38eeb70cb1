package sample

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// logits8 has a tie (ids 1 and 5) to exercise the rank order.
var logits8 = []float32{1.0, 2.0, 0.5, 3.0, -1.0, 2.0, 0.0, 1.5}

func softmax64(l []float64) []float64 {
	m := math.Inf(-1)
	for _, x := range l {
		m = math.Max(m, x)
	}
	out := make([]float64, len(l))
	var s float64
	for i, x := range l {
		out[i] = math.Exp(x - m)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

func scaled(l []float32, t float64) []float64 {
	out := make([]float64, len(l))
	for i, x := range l {
		out[i] = float64(x) / t
	}
	return out
}

// keepOnly zeroes the probabilities outside keep and renormalises.
func keepOnly(p []float64, keep ...int) []float64 {
	out := make([]float64, len(p))
	var s float64
	for _, k := range keep {
		out[k] = p[k]
		s += p[k]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

// frequencies samples n times (draws 0..n-1) and returns token frequencies.
func frequencies(t *testing.T, logits []float32, p Params, h *History, n int) []float64 {
	t.Helper()
	f := make([]float64, len(logits))
	for d := range n {
		r, err := Sample(logits, p, h, uint64(d))
		if err != nil {
			t.Fatal(err)
		}
		f[r.Token]++
	}
	for i := range f {
		f[i] /= float64(n)
	}
	return f
}

// checkDistribution fails unless the frequencies fit want by a chi-square
// test (critical value far out in the tail: the draws are deterministic, so
// a pass is stable) and tokens with probability 0 never appear.
func checkDistribution(t *testing.T, got, want []float64, n int) {
	t.Helper()
	var chi2 float64
	df := -1
	for i := range want {
		if want[i] == 0 {
			if got[i] != 0 {
				t.Errorf("token %d has probability 0 but was drawn %.0f times", i, got[i]*float64(n))
			}
			continue
		}
		df++
		e := want[i] * float64(n)
		o := got[i] * float64(n)
		chi2 += (o - e) * (o - e) / e
	}
	// Beyond the 99.99th percentile for df <= 10 (29.6 at df 10 is the 99.9th).
	if limit := float64(df) + 8*math.Sqrt(2*float64(max(df, 1))) + 4; chi2 > limit {
		t.Errorf("chi-square %.1f > %.1f (df %d)\n got  %.4f\n want %.4f", chi2, limit, df, got, want)
	}
}

func TestDistributions(t *testing.T) {
	const n = 40000
	base := softmax64(scaled(logits8, 1))
	// Rank order of logits8: 3, 1, 5, 7, 0, 2, 6, 4.
	cases := []struct {
		name string
		p    Params
		want []float64
	}{
		{"temperature 1", Params{Temperature: 1}, base},
		{"temperature 0.5", Params{Temperature: 0.5}, softmax64(scaled(logits8, 0.5))},
		{"temperature 2", Params{Temperature: 2}, softmax64(scaled(logits8, 2))},
		{"top-k 1", Params{Temperature: 1, TopK: 1}, keepOnly(base, 3)},
		{"top-k 2 breaks the tie by id", Params{Temperature: 1, TopK: 2}, keepOnly(base, 3, 1)},
		{"top-k 4", Params{Temperature: 1, TopK: 4}, keepOnly(base, 3, 1, 5, 7)},
		{"top-k beyond vocab", Params{Temperature: 1, TopK: 100}, base},
		// base: p3=.4455 p1=p5=.1639 p7=.0994 p0=.0603 ...: cumulative .4455 .6094 .7733 .8727 ...
		{"top-p 0.3", Params{Temperature: 1, TopP: 0.3}, keepOnly(base, 3)},
		{"top-p 0.6", Params{Temperature: 1, TopP: 0.6}, keepOnly(base, 3, 1)},
		{"top-p 0.75", Params{Temperature: 1, TopP: 0.75}, keepOnly(base, 3, 1, 5)},
		{"top-p 0.8", Params{Temperature: 1, TopP: 0.8}, keepOnly(base, 3, 1, 5, 7)},
		{"top-k 3 then top-p 0.6 of the top-k mass", Params{Temperature: 1, TopK: 3, TopP: 0.6}, keepOnly(base, 3, 1)},
		// w relative to the top: e^-1 = .368 for ids 1,5; e^-1.5 = .223 for 7; e^-2 = .135 for 0.
		{"min-p 0.3", Params{Temperature: 1, MinP: 0.3}, keepOnly(base, 3, 1, 5)},
		{"min-p 0.2", Params{Temperature: 1, MinP: 0.2}, keepOnly(base, 3, 1, 5, 7)},
		{"all filters", Params{Temperature: 0.8, TopK: 5, TopP: 0.95, MinP: 0.1}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == nil {
				want = refDistribution(logits8, c.p)
			}
			c.p.Seed = 42
			checkDistribution(t, frequencies(t, logits8, c.p, nil, n), want, n)
		})
	}
}

func TestPenaltiesShiftTheDistribution(t *testing.T) {
	const n = 40000
	h := NewHistory([]int32{3, 4}) // prompt: the top token and a negative one
	h.Append(1)
	h.Append(1)
	h.Append(0)
	adj := func(rep, freq, pres float64) []float64 {
		l := scaled(logits8, 1)
		for _, id := range []int{3, 4, 1, 0} {
			if l[id] > 0 {
				l[id] /= rep
			} else {
				l[id] *= rep
			}
		}
		l[1] -= 2*freq + pres
		l[0] -= freq + pres
		return softmax64(l)
	}
	cases := []struct {
		name           string
		rep, freq, pre float32
	}{
		{"repetition 1.3", 1.3, 0, 0},
		{"repetition below 1 rewards", 0.7, 0, 0},
		{"frequency 0.5", 0, 0.5, 0},
		{"presence 1", 0, 0, 1},
		{"all three", 1.2, 0.3, -0.4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := float64(c.rep)
			if rep == 0 {
				rep = 1
			}
			p := Params{Temperature: 1, RepetitionPenalty: c.rep, FrequencyPenalty: c.freq, PresencePenalty: c.pre, Seed: 7}
			checkDistribution(t, frequencies(t, logits8, p, h, n), adj(rep, float64(c.freq), float64(c.pre)), n)
		})
	}
	// Greedy sees the penalties too: a strong repetition penalty dethrones token 3.
	r, err := Sample(logits8, Params{RepetitionPenalty: 2}, h, 0)
	if err != nil || r.Token != 5 {
		t.Errorf("greedy with penalty: token %d (%v), want 5", r.Token, err)
	}
}

func TestGreedyTiesToLowestID(t *testing.T) {
	cases := []struct {
		logits []float32
		want   int32
	}{
		{[]float32{1, 3, 3, 2}, 1},
		{[]float32{5, 5, 5}, 0},
		{[]float32{float32(math.NaN()), -1, float32(math.Inf(-1)), -1}, 1},
		{[]float32{-2, -1}, 1},
	}
	for _, c := range cases {
		for _, temp := range []float32{0, 1e-7} {
			r, err := Sample(c.logits, Params{Temperature: temp, Seed: 99}, nil, 5)
			if err != nil || r.Token != c.want {
				t.Errorf("greedy %v (T=%g): %d, %v; want %d", c.logits, temp, r.Token, err, c.want)
			}
		}
	}
}

func TestBadInputsGiveErrors(t *testing.T) {
	inf := float32(math.Inf(-1))
	if _, err := Sample([]float32{inf, float32(math.NaN())}, Params{Temperature: 1}, nil, 0); err != ErrNoFiniteLogits {
		t.Errorf("all -Inf: %v", err)
	}
	if _, err := Sample(nil, Params{}, nil, 0); err == nil {
		t.Error("empty logits accepted")
	}
	if _, err := Sample(logits8, Params{RepetitionPenalty: 1.1}, NewHistory([]int32{8}), 0); err == nil {
		t.Error("history token outside the vocabulary accepted")
	}
	if _, err := Sample(logits8, Params{TopP: 2}, nil, 0); err == nil {
		t.Error("top_p 2 accepted")
	}
}

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	cases := []struct {
		p    Params
		want string // "" for valid
	}{
		{Params{}, ""},
		{Params{Temperature: 0.7, TopK: 40, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.1, PresencePenalty: -2, FrequencyPenalty: 2, TopLogprobs: 20, Logprobs: true}, ""},
		{Params{TopK: -1}, ""},
		{Params{Temperature: -0.1}, "temperature"},
		{Params{Temperature: nan}, "temperature"},
		{Params{TopP: 1.01}, "top_p"},
		{Params{TopP: -0.5}, "top_p"},
		{Params{MinP: 1.5}, "min_p"},
		{Params{RepetitionPenalty: -1}, "repetition_penalty"},
		{Params{PresencePenalty: 2.5}, "presence_penalty"},
		{Params{FrequencyPenalty: float32(math.Inf(1))}, "frequency_penalty"},
		{Params{TopLogprobs: 21}, "top_logprobs"},
		{Params{TopLogprobs: -1}, "top_logprobs"},
	}
	for _, c := range cases {
		err := c.p.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", c.p, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: error %v, want one naming %s", c.p, err, c.want)
		}
	}
}

func TestSeedReproducibleAloneOrBatched(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	const vocab = 300
	rows := make([]Row, 9)
	logits := make([]float32, vocab*len(rows))
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 2)
	}
	for i := range rows {
		rows[i] = Row{Params: Params{Temperature: 0.9, TopP: 0.95, Seed: uint64(1000 + i%3)}, Draw: uint64(i)}
	}
	batch, err := SampleRows(logits, vocab, rows)
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range rows {
		alone, err := Sample(logits[i*vocab:(i+1)*vocab], row.Params, nil, row.Draw)
		if err != nil || alone.Token != batch[i].Token {
			t.Errorf("row %d: alone %d (%v), batched %d", i, alone.Token, err, batch[i].Token)
		}
	}
	// Different seeds give different streams.
	same := 0
	for d := range uint64(200) {
		a, _ := Sample(logits[:vocab], Params{Temperature: 1, Seed: 1}, nil, d)
		b, _ := Sample(logits[:vocab], Params{Temperature: 1, Seed: 2}, nil, d)
		if a.Token == b.Token {
			same++
		}
	}
	if same > 40 {
		t.Errorf("seeds 1 and 2 agreed on %d of 200 draws", same)
	}
}

func TestNoiseKey(t *testing.T) {
	// SplitMix64 seeded with 0 first outputs 0xe220a8397b1dcdaf, and draw
	// d is output d+1; the CUDA side gets the key from the host.
	pins := []struct{ seed, draw, want uint64 }{
		{0, 0, 0xe220a8397b1dcdaf},
		{0, 1, 0x6e789e6aa1b965f4},
		{0, 2, 0x06c45d188009454f},
	}
	for _, p := range pins {
		if got := NoiseKey(p.seed, p.draw); got != p.want {
			t.Errorf("NoiseKey(%d, %d) = %#x, want %#x", p.seed, p.draw, got, p.want)
		}
	}
	if CompletionSeed(7, 0) != 7 || CompletionSeed(7, 1) == CompletionSeed(7, 2) {
		t.Error("CompletionSeed")
	}
}

func TestLogprobs(t *testing.T) {
	want := softmax64(scaled(logits8, 1))
	for _, temp := range []float32{0, 0.5, 2} {
		r, err := Sample(logits8, Params{Temperature: temp, TopK: 2, Logprobs: true, TopLogprobs: 3, Seed: 3}, nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(float64(r.Logprob) - math.Log(want[r.Token])); d > 1e-5 {
			t.Errorf("T=%g: logprob of %d = %v, want %v", temp, r.Token, r.Logprob, math.Log(want[r.Token]))
		}
		ids := []int32{3, 1, 5}
		if len(r.Top) != 3 {
			t.Fatalf("top has %d entries", len(r.Top))
		}
		for i, tl := range r.Top {
			if tl.ID != ids[i] || math.Abs(float64(tl.Logprob)-math.Log(want[ids[i]])) > 1e-5 {
				t.Errorf("top[%d] = %+v, want id %d logprob %v", i, tl, ids[i], math.Log(want[ids[i]]))
			}
		}
	}
	r, _ := Sample(logits8, Params{}, nil, 0)
	if r.Logprob != 0 || r.Top != nil {
		t.Errorf("logprobs filled without being asked: %+v", r)
	}
}

// refDistribution is a plain float64 restatement of the documented
// semantics: rank, top-k, top-p over the top-k mass, min-p, renormalise.
func refDistribution(logits []float32, p Params) []float64 {
	probs := softmax64(scaled(logits, float64(p.Temperature)))
	order := make([]int, len(logits))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return logits[order[a]] > logits[order[b]] })
	k := len(order)
	if p.TopK > 0 && p.TopK < k {
		k = p.TopK
	}
	order = order[:k]
	if p.TopP > 0 && p.TopP < 1 {
		var mass, cum float64
		for _, id := range order {
			mass += probs[id]
		}
		for i, id := range order {
			cum += probs[id]
			if cum >= float64(p.TopP)*mass {
				order = order[:i+1]
				break
			}
		}
	}
	var keep []int
	for _, id := range order {
		if probs[id] >= float64(p.MinP)*probs[order[0]] {
			keep = append(keep, id)
		}
	}
	return keepOnly(probs, keep...)
}

func TestWideTopPMatchesReference(t *testing.T) {
	// A flat-ish 5,000-token vocabulary makes top-p need hundreds of ranks,
	// exercising the growing rank prefix.
	r := rand.New(rand.NewPCG(9, 9))
	const vocab = 5000
	logits := make([]float32, vocab)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 0.3)
	}
	for _, p := range []Params{
		{Temperature: 1, TopP: 0.5},
		{Temperature: 1, TopP: 0.9, MinP: 0.3},
		{Temperature: 0.7, TopK: 700, TopP: 0.8},
	} {
		want := refDistribution(logits, p)
		support := 0
		for _, w := range want {
			if w > 0 {
				support++
			}
		}
		p.Seed = 5
		for d := range uint64(2000) {
			res, err := Sample(logits, p, nil, d)
			if err != nil {
				t.Fatal(err)
			}
			if want[res.Token] == 0 {
				t.Fatalf("%+v: drew token %d outside the reference support (%d tokens)", p, res.Token, support)
			}
		}
		if support < 100 {
			t.Errorf("%+v: support %d too small to exercise the wide path", p, support)
		}
	}
}

func TestHistory(t *testing.T) {
	var h History // the zero value works
	h.Append(5)
	h.Append(5)
	c := h.Clone()
	c.Append(6)
	ids, counts := h.Tokens()
	if !slices.Equal(ids, []int32{5}) || !slices.Equal(counts, []int32{2}) || h.OutputLen() != 2 {
		t.Errorf("history %v %v %d", ids, counts, h.OutputLen())
	}
	if ids, _ := c.Tokens(); len(ids) != 2 {
		t.Errorf("clone %v", ids)
	}
}

func TestWeightAccuracy(t *testing.T) {
	for _, temp := range []float32{0.3, 1, 1.7} {
		ws := WeightScale(temp)
		prev := float32(2)
		for d := float32(0); d < 60*temp; d += 0.00371 {
			x := 5 - d
			got := weight(x, 5, ws)
			want := math.Exp(float64(x-5) / float64(temp))
			if math.Abs(float64(got)-want) > 7e-4*want {
				t.Fatalf("T=%v weight(%v) = %v, want %v", temp, x, got, want)
			}
			if got > prev {
				t.Fatalf("T=%v weight not monotone at %v: %v after %v", temp, x, got, prev)
			}
			prev = got
		}
	}
	ws := WeightScale(1)
	if weight(float32(math.Inf(-1)), 0, ws) != 0 || weight(-100, 0, ws) != 0 || weight(3, 3, ws) != 1 {
		t.Error("weight edge values")
	}
	if got, want := weight(-87, 0, ws), math.Exp(-87); got == 0 || math.Abs(float64(got)-want) > 7e-4*want {
		t.Errorf("weight(-87) = %v, want %v (smallest normal range)", got, want)
	}
	// the exponent comes from the logit itself: q(x) - q(max), each
	// rounded on its own
	if got, want := weight(0.25, 0.75, ws), weightQ(0.25, qOf(0.75, ws), ws); got != want || qOf(0.75, ws) != 1108 {
		t.Errorf("weight(0.25, 0.75) = %v, weightQ %v, q(0.75) = %d", got, want, qOf(0.75, ws))
	}
	if qOf(1e38, ws) != 1<<62 || qOf(-1e38, ws) != -1<<62 {
		t.Errorf("qOf clamp: %d %d", qOf(1e38, ws), qOf(-1e38, ws))
	}
	// masses: 2^-32 and below count 0, just above it 1 unit
	for _, c := range []struct {
		w    float32
		want uint64
	}{{1, 1 << 32}, {0x1p-32, 0}, {0x1p-33, 0}, {math.Nextafter32(0x1p-32, 1), 1}, {0x1.8p-32, 2}, {0.5, 1 << 31}} {
		if got := fixedOf(c.w); got != c.want {
			t.Errorf("fixedOf(%g) = %d, want %d", c.w, got, c.want)
		}
	}
	if tab := ExpTable(); len(tab) != 1024 || tab[0] != 0 || tab[512] != math.Float32bits(float32(math.Sqrt2))&0x7fffff {
		t.Errorf("ExpTable: %d entries, [0]=%#x [512]=%#x", len(tab), tab[0], tab[512])
	}
}

func TestSampleRowsRejectsBadShapes(t *testing.T) {
	if _, err := SampleRows(make([]float32, 10), 4, make([]Row, 2)); err == nil {
		t.Error("10 logits for 2 rows of 4 accepted")
	}
	if _, err := SampleRows(logits8, 8, []Row{{Params: Params{TopP: 3}}}); err == nil {
		t.Error("bad params accepted")
	}
}

// TestCutTokenIsExactFixedPointPrefix pins the cut both backends compute:
// the first token, in rank order over the tokens ranking at or before
// limit, at which the running count, or the running fixedOf mass, reaches
// the target (goal, or goal times the set's fixedOf total), compared as
// float64 of an exact integer. A brute-force sort must agree token for
// token, whatever buckets cutToken uses.
func TestCutTokenIsExactFixedPointPrefix(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	gens := []struct {
		name string
		gen  func(i int) float32
	}{
		{"normal", func(int) float32 { return float32(r.NormFloat64() * 2) }},
		{"ties", func(int) float32 { return float32(r.IntN(9)) / 4 }},
		{"peaked", func(i int) float32 {
			if i%97 == 0 {
				return 9
			}
			return float32(r.NormFloat64())
		}},
	}
	for _, g := range gens {
		for _, temp := range []float32{0.5, 1, 1.7} {
			l := make([]float32, 3000)
			maxL := float32(math.Inf(-1))
			for i := range l {
				l[i] = g.gen(i)
				maxL = max(maxL, l[i])
			}
			s := new(scratch)
			s.size(len(l))
			copy(s.l, l)
			ws := WeightScale(temp)
			for i, x := range l {
				s.w[i] = weight(x, maxL, ws)
			}
			order := make([]int32, len(l))
			for i := range order {
				order[i] = int32(i)
			}
			slices.SortFunc(order, func(a, b int32) int { return rankCmp(l, a, b) })
			brute := func(byMass bool, goal float64, limit int32) int32 {
				set := order
				if limit >= 0 {
					set = order[:slices.Index(order, limit)+1]
				}
				var total, acc uint64
				val := func(id int32) uint64 {
					if byMass {
						return fixedOf(s.w[id])
					}
					return 1
				}
				for _, id := range set {
					total += val(id)
				}
				target := goal
				if byMass {
					target = goal * float64(total)
				}
				for _, id := range set {
					acc += val(id)
					if float64(acc) >= target && (!byMass || val(id) > 0) {
						return id
					}
				}
				return -1
			}
			for _, c := range []struct {
				byMass bool
				goal   float64
				limit  int32
			}{
				{false, 1, -1}, {false, 50, -1}, {false, 2999, -1},
				{true, 0.5, -1}, {true, 0.9, -1}, {true, 0.999, -1},
				{true, 0.8, order[40]}, {true, 0.95, order[700]},
			} {
				got, want := cutToken(s, c.byMass, c.goal, c.limit), brute(c.byMass, c.goal, c.limit)
				if got != want {
					t.Errorf("%s T=%v byMass=%v goal=%v limit=%d: cut %d, brute force %d", g.name, temp, c.byMass, c.goal, c.limit, got, want)
				}
			}
		}
	}
}

// weighGPU is one thread's weighing in kernels/sample.cu's tp_finish
// (threads t of T, values d0 .. d0 + 32768/T - 1, d0 = -32767 +
// (32768/T) t, count(d) their counts), op for op in integers: the sum of
// count * m24 shifted left by E + 9 where E >= -9, else of m24 >> rs
// rounded to nearest even; the last value, where it starts the next
// band, taken off and weighed as fixedOf(weight).
func weighGPU(t, T int, count func(d int) uint32) uint64 {
	per := 32768 / T
	d0 := -32767 + per*t
	e0 := d0 >> 10
	rs, lsh := uint32(max(-9-e0, 0)), uint32(max(e0+9, 0))
	var hm1, pm uint32
	if rs > 0 {
		hm1, pm = 1<<(rs-1)-1, 1
	}
	one := func(d int) uint64 {
		m24 := expMant[d&(expSize-1)] | 0x800000
		return uint64(count(d)) * uint64((m24+hm1+((m24>>rs)&pm))>>rs)
	}
	var a uint64
	for d := d0; d < d0+per; d++ {
		a += one(d)
	}
	s := a << lsh
	if dl := d0 + per - 1; dl&1023 == 0 {
		s -= one(dl) << lsh
		s += uint64(count(dl)) * fixedOf(weightOfQ(int64(dl)))
	}
	return s
}

// TestGPUIntegerWeighing: tp_finish's integer weighing gives each
// thread's sum of count * fixedOf(weight) exactly, at both block sizes of
// the one-read top-p, for single values (every d) and random counts.
func TestGPUIntegerWeighing(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, T := range []int{512, 1024} {
		per := 32768 / T
		for tid := range T {
			d0 := -32767 + per*tid
			for d := d0; d < d0+per; d++ { // each value alone, count 1
				got := weighGPU(tid, T, func(e int) uint32 { return b2u(e == d) })
				if want := fixedOf(weightOfQ(int64(d))); got != want {
					t.Fatalf("T %d thread %d d %d: %d, want %d", T, tid, d, got, want)
				}
			}
			counts := make([]uint32, per)
			var want uint64
			for j := range counts {
				counts[j] = r.Uint32N(65536) >> r.UintN(17)
				want += uint64(counts[j]) * fixedOf(weightOfQ(int64(d0+j)))
			}
			if got := weighGPU(tid, T, func(e int) uint32 { return counts[e-d0] }); got != want {
				t.Fatalf("T %d thread %d random counts: %d, want %d", T, tid, got, want)
			}
		}
	}
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
