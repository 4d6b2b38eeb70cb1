package cpu

import (
	"fmt"
	"math"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// step is a staged batch; the CPU reads the host slices directly.
type step struct{ b *backend.Batch }

func (s *step) Batch() *backend.Batch { return s.b }

// Stage implements backend.Backend.
func (b *Backend) Stage(batch *backend.Batch) (backend.Step, error) {
	if batch == nil || len(batch.Tokens) == 0 {
		return nil, fmt.Errorf("cpu: stage: empty batch")
	}
	return &step{b: batch}, nil
}

func batchOf(st backend.Step) (*backend.Batch, error) {
	s, ok := st.(*step)
	if !ok || s == nil {
		return nil, fmt.Errorf("cpu: step %T was not staged by the CPU backend", st)
	}
	return s.b, nil
}

// Embed implements backend.Backend.
func (b *Backend) Embed(out backend.Tensor, table *backend.Weight, st backend.Step) error {
	batch, err := batchOf(st)
	if err != nil {
		return err
	}
	o, err := f32(out, "cpu: embed out", len(batch.Tokens)*table.Cols)
	if err != nil {
		return err
	}
	row, err := rowReader(table)
	if err != nil {
		return fmt.Errorf("cpu: embed: %w", err)
	}
	for i, id := range batch.Tokens {
		if id < 0 || int(id) >= table.Rows {
			return fmt.Errorf("cpu: embed: token %d outside vocabulary of %d", id, table.Rows)
		}
		row(int(id), o[i*table.Cols:(i+1)*table.Cols])
	}
	return nil
}

// rmsNormRow writes out = x / sqrt(mean(x²) + eps) * w. The sum of squares
// is accumulated in float64 so that long rows do not lose precision.
func rmsNormRow(out, x, w []float32, eps float32) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	for i, v := range x {
		out[i] = v * inv * w[i]
	}
}

func (b *Backend) normArgs(what string, out, x, w backend.Tensor) (o, xs, ws []float32, cols int, err error) {
	xt, err := asTensor(x)
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("cpu: %s: %w", what, err)
	}
	cols = xt.cols()
	if xs, err = f32(x, "cpu: "+what+" x", -1); err != nil {
		return
	}
	if o, err = f32(out, "cpu: "+what+" out", len(xs)); err != nil {
		return
	}
	ws, err = f32(w, "cpu: "+what+" weight", cols)
	return
}

// RMSNorm implements backend.Backend.
func (b *Backend) RMSNorm(out, x, w backend.Tensor, eps float32) error {
	o, xs, ws, cols, err := b.normArgs("rmsnorm", out, x, w)
	if err != nil {
		return err
	}
	b.parallel(len(xs)/cols, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			rmsNormRow(o[r*cols:(r+1)*cols], xs[r*cols:(r+1)*cols], ws, eps)
		}
	})
	return nil
}

// AddRMSNorm implements backend.Backend.
func (b *Backend) AddRMSNorm(out, residual, x, w backend.Tensor, eps float32) error {
	o, res, ws, cols, err := b.normArgs("add_rmsnorm", out, residual, w)
	if err != nil {
		return err
	}
	xs, err := f32(x, "cpu: add_rmsnorm x", len(res))
	if err != nil {
		return err
	}
	b.parallel(len(res)/cols, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			rr := res[r*cols : (r+1)*cols]
			for i, v := range xs[r*cols : (r+1)*cols] {
				rr[i] += v
			}
			rmsNormRow(o[r*cols:(r+1)*cols], rr, ws, eps)
		}
	})
	return nil
}

// HeadRMSNorm implements backend.Backend.
func (b *Backend) HeadRMSNorm(x backend.Tensor, colStart, heads, headDim int, w backend.Tensor, eps float32) error {
	xt, err := asTensor(x)
	if err != nil {
		return fmt.Errorf("cpu: head_rmsnorm: %w", err)
	}
	cols := xt.cols()
	if colStart < 0 || colStart+heads*headDim > cols {
		return fmt.Errorf("cpu: head_rmsnorm: columns [%d,%d) outside row of %d", colStart, colStart+heads*headDim, cols)
	}
	xs, err := f32(x, "cpu: head_rmsnorm x", -1)
	if err != nil {
		return err
	}
	ws, err := f32(w, "cpu: head_rmsnorm weight", headDim)
	if err != nil {
		return err
	}
	for r := 0; r < len(xs)/cols; r++ {
		for h := 0; h < heads; h++ {
			s := xs[r*cols+colStart+h*headDim : r*cols+colStart+(h+1)*headDim]
			rmsNormRow(s, s, ws, eps)
		}
	}
	return nil
}

// SiLUMul implements backend.Backend.
func (b *Backend) SiLUMul(out, gu backend.Tensor) error {
	g, err := asTensor(gu)
	if err != nil {
		return fmt.Errorf("cpu: silu_mul: %w", err)
	}
	inter := g.cols() / 2
	gs, err := f32(gu, "cpu: silu_mul gu", -1)
	if err != nil {
		return err
	}
	o, err := f32(out, "cpu: silu_mul out", len(gs)/2)
	if err != nil {
		return err
	}
	rows := len(gs) / (2 * inter)
	b.parallel(rows, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			gate := gs[r*2*inter : r*2*inter+inter]
			up := gs[r*2*inter+inter : (r+1)*2*inter]
			dst := o[r*inter : (r+1)*inter]
			for i, v := range gate {
				dst[i] = v / (1 + float32(math.Exp(float64(-v)))) * up[i]
			}
		}
	})
	return nil
}

// GatherRows implements backend.Backend.
func (b *Backend) GatherRows(out, x backend.Tensor, st backend.Step) error {
	batch, err := batchOf(st)
	if err != nil {
		return err
	}
	xt, err := asTensor(x)
	if err != nil {
		return fmt.Errorf("cpu: gather_rows: %w", err)
	}
	cols := xt.cols()
	xs, err := f32(x, "cpu: gather_rows x", -1)
	if err != nil {
		return err
	}
	o, err := f32(out, "cpu: gather_rows out", len(batch.LogitRows)*cols)
	if err != nil {
		return err
	}
	for i, r := range batch.LogitRows {
		if int(r) >= len(xs)/cols || r < 0 {
			return fmt.Errorf("cpu: gather_rows: row %d out of range", r)
		}
		copy(o[i*cols:(i+1)*cols], xs[int(r)*cols:(int(r)+1)*cols])
	}
	return nil
}
