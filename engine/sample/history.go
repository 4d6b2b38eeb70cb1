package sample

// History is what the penalties need to know about one sequence: every
// distinct token seen in its prompt or output, and how many times each
// appeared in the output. Append is O(1); the dense parallel slices are
// what a device sampler uploads. A History is owned by one sequence and is
// not safe for concurrent mutation. The zero value is an empty history.
type History struct {
	ids       []int32         // distinct tokens, in first-seen order
	outCounts []int32         // output occurrences of ids[i]
	pos       map[int32]int32 // token -> index into ids
	outputLen int
}

// NewHistory starts a history from a prompt.
func NewHistory(prompt []int32) *History {
	h := &History{pos: make(map[int32]int32, len(prompt))}
	for _, t := range prompt {
		h.entry(t)
	}
	return h
}

func (h *History) entry(t int32) int32 {
	if h.pos == nil {
		h.pos = make(map[int32]int32)
	}
	i, ok := h.pos[t]
	if !ok {
		i = int32(len(h.ids))
		h.pos[t] = i
		h.ids = append(h.ids, t)
		h.outCounts = append(h.outCounts, 0)
	}
	return i
}

// Append records a generated token.
func (h *History) Append(t int32) {
	h.outCounts[h.entry(t)]++
	h.outputLen++
}

// OutputLen returns the number of generated tokens recorded.
func (h *History) OutputLen() int { return h.outputLen }

// Tokens returns, as parallel read-only views, the distinct tokens seen in
// prompt or output and each one's count in the output (0 for prompt-only).
func (h *History) Tokens() (ids, outputCounts []int32) { return h.ids, h.outCounts }

// Clone returns an independent copy (for a sequence forked from this one).
func (h *History) Clone() *History {
	c := &History{
		ids:       append([]int32(nil), h.ids...),
		outCounts: append([]int32(nil), h.outCounts...),
		pos:       make(map[int32]int32, len(h.pos)),
		outputLen: h.outputLen,
	}
	for k, v := range h.pos {
		c.pos[k] = v
	}
	return c
}
