package sample

import (
	"container/heap"
	"math"
	"slices"
)

// selectTop returns the first n tokens in rank order (logit descending,
// ties by lower id), using s.idx as storage.
func selectTop(s *scratch, l []float32, n int) []int32 {
	v := len(l)
	idx := s.idx[:0]
	if n >= v/4 {
		for i := range v {
			idx = append(idx, int32(i))
		}
		slices.SortFunc(idx, func(a, b int32) int { return rankCmp(l, a, b) })
		s.idx = idx
		return idx[:n]
	}
	// Bounded heap whose root is the worst of the best n seen so far.
	hp := rankHeap{l: l, ids: idx}
	for i := range v {
		id := int32(i)
		if len(hp.ids) < n {
			heap.Push(&hp, id)
			continue
		}
		if ranksBefore(l, id, hp.ids[0]) {
			hp.ids[0] = id
			heap.Fix(&hp, 0)
		}
	}
	out := hp.ids
	slices.SortFunc(out, func(a, b int32) int { return rankCmp(l, a, b) })
	s.idx = out
	return out
}

func rankCmp(l []float32, a, b int32) int {
	switch {
	case a == b:
		return 0
	case ranksBefore(l, a, b):
		return -1
	}
	return 1
}

// rankHeap is a heap whose root ranks last.
type rankHeap struct {
	l   []float32
	ids []int32
}

func (h *rankHeap) Len() int           { return len(h.ids) }
func (h *rankHeap) Less(i, j int) bool { return ranksBefore(h.l, h.ids[j], h.ids[i]) }
func (h *rankHeap) Swap(i, j int)      { h.ids[i], h.ids[j] = h.ids[j], h.ids[i] }
func (h *rankHeap) Push(x any)         { h.ids = append(h.ids, x.(int32)) }
func (h *rankHeap) Pop() any {
	x := h.ids[len(h.ids)-1]
	h.ids = h.ids[:len(h.ids)-1]
	return x
}

// logprobs fills the chosen token's log-probability and the top-n list
// from the penalised logits l (before temperature).
func logprobs(res *Result, s *scratch, l []float32, maxL float32, n int) {
	var sum float64
	for _, x := range l {
		sum += math.Exp(float64(x - maxL))
	}
	logZ := float64(maxL) + math.Log(sum)
	res.Logprob = float32(float64(l[res.Token]) - logZ)
	if n == 0 {
		return
	}
	n = min(n, len(l))
	top := selectTop(s, l, n)
	res.Top = make([]TokenLogprob, len(top))
	for i, id := range top {
		res.Top[i] = TokenLogprob{ID: id, Logprob: float32(float64(l[id]) - logZ)}
	}
}
