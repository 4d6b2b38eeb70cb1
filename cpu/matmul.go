package cpu

import (
	"fmt"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/weights"
)

// MatMul implements backend.Backend: out[T, Rows] = x[T, Cols] · Wᵀ + bias.
//
// Work is split over weight rows so that each weight row is read (and
// widened to float32) once per call and reused for every token of the step:
// decode is bound by reading the weights, prefill by the dot products.
func (b *Backend) MatMul(out, x backend.Tensor, w *backend.Weight) error {
	if w == nil || w.Data == nil {
		return fmt.Errorf("cpu: matmul: nil weight")
	}
	xt, err := asTensor(x)
	if err != nil {
		return fmt.Errorf("cpu: matmul x: %w", err)
	}
	if xt.cols() != w.Cols {
		return fmt.Errorf("cpu: matmul: x has %d columns, weight has %d", xt.cols(), w.Cols)
	}
	t := xt.rows()
	xs, err := f32(x, "cpu: matmul x", t*w.Cols)
	if err != nil {
		return err
	}
	o, err := f32(out, "cpu: matmul out", t*w.Rows)
	if err != nil {
		return err
	}
	row, err := rowReader(w)
	if err != nil {
		return err
	}
	var bias []float32
	if w.Bias != nil {
		if bias, err = f32(w.Bias, "cpu: matmul bias", w.Rows); err != nil {
			return err
		}
	}
	cols := w.Cols
	b.parallel(w.Rows, 8, func(lo, hi int) {
		buf := make([]float32, cols)
		for r := lo; r < hi; r++ {
			row(r, buf)
			var bv float32
			if bias != nil {
				bv = bias[r]
			}
			for i := 0; i < t; i++ {
				o[i*w.Rows+r] = dot(xs[i*cols:(i+1)*cols], buf) + bv
			}
		}
	})
	return nil
}

// dot is a float32 dot product with four independent accumulators.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// rowReader returns a function that writes weight row r, dequantized to
// float32, into buf (len Cols).
func rowReader(w *backend.Weight) (func(r int, buf []float32), error) {
	d, err := asTensor(w.Data)
	if err != nil {
		return nil, fmt.Errorf("cpu: weight: %w", err)
	}
	n := w.Rows * w.Cols
	if backend.Numel(d.shape) != n {
		return nil, fmt.Errorf("cpu: weight data %v does not hold %dx%d", d.shape, w.Rows, w.Cols)
	}
	if !w.Quantized() {
		switch d.dt {
		case backend.F32:
			return func(r int, buf []float32) { copy(buf, d.F32[r*w.Cols:(r+1)*w.Cols]) }, nil
		case backend.BF16, backend.F16:
			return func(r int, buf []float32) { widen(d.dt, d.Raw[2*r*w.Cols:2*(r+1)*w.Cols], buf) }, nil
		}
		return nil, fmt.Errorf("cpu: unquantized weight of dtype %s not supported", d.dt)
	}
	scales, err := f32(w.Scales, "cpu: weight scales", -1)
	if err != nil {
		return nil, err
	}
	group := w.GroupSize
	if group == 0 {
		group = w.Cols
	}
	if group <= 0 || w.Cols%group != 0 || len(scales) != w.Rows*(w.Cols/group) {
		return nil, fmt.Errorf("cpu: weight %dx%d group %d with %d scales", w.Rows, w.Cols, w.GroupSize, len(scales))
	}
	perRow := w.Cols / group
	switch d.dt {
	case backend.FP8E4M3, backend.I8:
		if len(d.Raw) != n {
			return nil, fmt.Errorf("cpu: %s weight holds %d bytes, want %d", d.dt, len(d.Raw), n)
		}
		fp8 := d.dt == backend.FP8E4M3
		return func(r int, buf []float32) {
			raw := d.Raw[r*w.Cols : (r+1)*w.Cols]
			for c := range buf {
				var v float32
				if fp8 {
					v = fp8Table[raw[c]]
				} else {
					v = float32(int8(raw[c]))
				}
				buf[c] = v * scales[r*perRow+c/group]
			}
		}, nil
	case backend.I4:
		if w.Cols%2 != 0 || len(d.Raw) != n/2 {
			return nil, fmt.Errorf("cpu: i4 weight holds %d bytes, want %d (even Cols)", len(d.Raw), n/2)
		}
		return func(r int, buf []float32) {
			raw := d.Raw[r*w.Cols/2 : (r+1)*w.Cols/2]
			for c := range buf {
				nib := raw[c/2]
				if c%2 == 1 {
					nib >>= 4
				}
				v := int8(nib<<4) >> 4 // sign-extend the low nibble
				buf[c] = float32(v) * scales[r*perRow+c/group]
			}
		}, nil
	}
	return nil, fmt.Errorf("cpu: quantized weight of dtype %s not supported", d.dt)
}

var fp8Table = func() (t [256]float32) {
	for i := range t {
		t[i] = weights.FP8E4M3ToF32(byte(i))
	}
	return
}()
