package backend

import (
	"encoding/binary"
	"math"
)

// Composed gives any backend FusedLinear by running the separate ops the
// fusions stand for, with scratch tensors per call: the reference the fused
// kernels are checked against (tests wrap a backend in it), not a fast path.
type Composed struct {
	Backend
	// Rows is what FusedLinearRows reports for every weight.
	Rows int
}

// FusedLinearRows implements FusedLinear.
func (c Composed) FusedLinearRows(*Weight, bool) int { return c.Rows }

// NormMatMul implements FusedLinear: RMSNorm into a scratch, then MatMul.
func (c Composed) NormMatMul(out, x, norm Tensor, eps float32, w *Weight) error {
	tmp, err := c.Alloc(x.DType(), x.Shape()...)
	if err != nil {
		return err
	}
	defer c.Free(tmp)
	if err := c.RMSNorm(tmp, x, norm, eps); err != nil {
		return err
	}
	return c.MatMul(out, tmp, w)
}

// MatMulAdd implements FusedLinear: MatMul into a scratch, then the add of
// AddRMSNorm (its norm, of weight 1, goes to a second scratch).
func (c Composed) MatMulAdd(residual, x Tensor, w *Weight) error {
	shape := residual.Shape()
	prod, err := c.Alloc(residual.DType(), shape...)
	if err != nil {
		return err
	}
	defer c.Free(prod)
	normed, err := c.Alloc(residual.DType(), shape...)
	if err != nil {
		return err
	}
	defer c.Free(normed)
	d := shape[len(shape)-1]
	one := make([]byte, 4*d)
	for i := 0; i < d; i++ {
		binary.LittleEndian.PutUint32(one[4*i:], math.Float32bits(1))
	}
	ones, err := c.Upload(F32, []int{d}, one)
	if err != nil {
		return err
	}
	defer c.Free(ones)
	if err := c.MatMul(prod, x, w); err != nil {
		return err
	}
	return c.AddRMSNorm(normed, residual, prod, ones, 1e-6)
}
