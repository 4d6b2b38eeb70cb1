package cpu

import (
	"fmt"
	"unsafe"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/weights"
)

// MatMul implements backend.Backend: out[T, Rows] = x[T, Cols] · Wᵀ + bias.
//
// Work is split over weight rows, so each goroutine streams its own share of
// the weights once per call. BF16, F16 and F32 weights are read in place by
// fused widen-and-FMA kernels (AVX2 assembly on amd64, Go elsewhere); the
// quantized formats are dequantized a block of rows at a time into float32
// and go through the F32 kernel. Within a block the kernel takes 2 rows × 4
// tokens at once so that prefill reuses every weight load for 4 tokens;
// the tokens left over (decode's one) take a 4 rows × 1 token kernel with
// the same per-sum arithmetic, so a token's result does not depend on T.
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
	d, err := asTensor(w.Data)
	if err != nil {
		return fmt.Errorf("cpu: weight: %w", err)
	}
	if backend.Numel(d.shape) != w.Rows*w.Cols {
		return fmt.Errorf("cpu: weight data %v does not hold %dx%d", d.shape, w.Rows, w.Cols)
	}
	var bias []float32
	if w.Bias != nil {
		if bias, err = f32(w.Bias, "cpu: matmul bias", w.Rows); err != nil {
			return err
		}
	}
	rows, cols := w.Rows, w.Cols
	if cols == 0 || t == 0 {
		for i := range t {
			for r := range rows {
				o[i*rows+r] = 0
				if bias != nil {
					o[i*rows+r] = bias[r]
				}
			}
		}
		return nil
	}
	m := matmul{o: o, xs: xs, bias: bias, t: t, rows: rows, cols: cols}
	if !w.Quantized() {
		k := kernelFor(d.dt)
		if k == nil {
			return fmt.Errorf("cpu: unquantized weight of dtype %s not supported", d.dt)
		}
		var base unsafe.Pointer
		if d.dt == backend.F32 {
			base = unsafe.Pointer(unsafe.SliceData(d.F32))
		} else {
			base = unsafe.Pointer(unsafe.SliceData(d.Raw))
		}
		stride := uintptr(cols) * k.elemBytes
		block := blockRows(cols, k.elemBytes)
		b.parallel(rows, 8, func(lo, hi int) {
			for r0 := lo; r0 < hi; r0 += block {
				m.tile(k, unsafe.Add(base, uintptr(r0)*stride), stride, r0, min(r0+block, hi))
			}
		})
		return nil
	}
	row, err := rowReader(w)
	if err != nil {
		return err
	}
	k := kernelFor(backend.F32)
	block := blockRows(cols, 4)
	b.parallel(rows, 8, func(lo, hi int) {
		buf := make([]float32, block*cols)
		for r0 := lo; r0 < hi; r0 += block {
			r1 := min(r0+block, hi)
			for r := r0; r < r1; r++ {
				row(r, buf[(r-r0)*cols:(r-r0+1)*cols])
			}
			m.tile(k, unsafe.Pointer(&buf[0]), uintptr(cols)*4, r0, r1)
		}
	})
	return nil
}

// blockRows is how many weight rows one tile covers: about 128 KiB of
// weights, so that a block stays in L2 while every group of 4 tokens passes
// over it; always even, at least 2.
func blockRows(cols int, elemBytes uintptr) int {
	n := (128 << 10) / (cols * int(elemBytes))
	return max(2, n&^1)
}

// matmul is one MatMul call's operands: o[T, rows] = xs[T, cols] · Wᵀ + bias.
type matmul struct {
	o, xs, bias   []float32
	t, rows, cols int
}

// tile computes the output columns [r0, r1) for every token; w points at
// weight row r0 and rows are stride bytes apart. cols > 0.
func (m *matmul) tile(k *kernel, w unsafe.Pointer, stride uintptr, r0, r1 int) {
	t, rows, cols, xs, o := m.t, m.rows, m.cols, m.xs, m.o
	n8 := cols &^ 7
	var acc [8]float32
	i := 0
	for ; i+4 <= t; i += 4 {
		r := r0
		for ; r+2 <= r1; r += 2 {
			wr := unsafe.Add(w, uintptr(r-r0)*stride)
			k.dot2x4(&xs[i*cols], uintptr(cols)*4, wr, stride, n8, &acc)
			for j := range 4 {
				for q := range 2 {
					s := acc[4*q+j]
					if n8 < cols {
						s += tailDot(k, xs[(i+j)*cols:(i+j+1)*cols], unsafe.Add(wr, uintptr(q)*stride), n8)
					}
					o[(i+j)*rows+r+q] = s + m.biasAt(r+q)
				}
			}
		}
		for ; r < r1; r++ {
			for j := i; j < i+4; j++ {
				o[j*rows+r] = m.dot1(k, j, unsafe.Add(w, uintptr(r-r0)*stride)) + m.biasAt(r)
			}
		}
	}
	// The last t%4 tokens take dot4x1, whose sums are dot2x4's, so that a
	// token's outputs do not depend on how many tokens share the step:
	// padding a batch, or batching a request with others, leaves its
	// results bit for bit. (An odd last weight row takes dot1 for every
	// token either way.)
	var acc4 [4]float32
	for ; i < t; i++ {
		x := xs[i*cols : (i+1)*cols]
		r := r0
		for ; r+4 <= r1; r += 4 {
			wr := unsafe.Add(w, uintptr(r-r0)*stride)
			k.dot4x1(&x[0], wr, stride, n8, &acc4)
			for q := range 4 {
				s := acc4[q]
				if n8 < cols {
					s += tailDot(k, x, unsafe.Add(wr, uintptr(q)*stride), n8)
				}
				o[i*rows+r+q] = s + m.biasAt(r+q)
			}
		}
		for ; r+2 <= r1; r += 2 {
			wr := unsafe.Add(w, uintptr(r-r0)*stride)
			k.dot2x4(&x[0], 0, wr, stride, n8, &acc)
			for q := range 2 {
				s := acc[4*q]
				if n8 < cols {
					s += tailDot(k, x, unsafe.Add(wr, uintptr(q)*stride), n8)
				}
				o[i*rows+r+q] = s + m.biasAt(r+q)
			}
		}
		for ; r < r1; r++ {
			o[i*rows+r] = m.dot1(k, i, unsafe.Add(w, uintptr(r-r0)*stride)) + m.biasAt(r)
		}
	}
}

// dot1 returns x row i · the weight row at w.
func (m *matmul) dot1(k *kernel, i int, w unsafe.Pointer) float32 {
	x := m.xs[i*m.cols : (i+1)*m.cols]
	n8 := m.cols &^ 7
	s := k.dot1(&x[0], w, n8)
	if n8 < m.cols {
		s += tailDot(k, x, w, n8)
	}
	return s
}

func (m *matmul) biasAt(r int) float32 {
	if m.bias == nil {
		return 0
	}
	return m.bias[r]
}

// tailDot returns x[from:]·w[from:len(x)], the columns the vector kernels
// leave over.
func tailDot(k *kernel, x []float32, w unsafe.Pointer, from int) float32 {
	var s float32
	for c := from; c < len(x); c++ {
		s += x[c] * k.at(w, c)
	}
	return s
}

// rowReader returns a function that writes weight row r, dequantized to
// float32, into buf (len Cols). Embed uses it for any format, MatMul for the
// quantized ones.
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
