package weights

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// BF16ToF32 widens a bfloat16 (its bit pattern) to float32; exact.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 narrows a float32 to bfloat16 bits, rounding to nearest with
// ties to even. NaN stays NaN (quiet, sign kept); overflow gives ±Inf.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it NaN even if the payload is in the low bits
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// F16ToF32 widens an IEEE 754 half-precision value (its bit pattern) to
// float32; exact, including subnormals, infinities and NaN.
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp != 0: // normal: rebias 15 -> 127
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal half: man * 2^-24, which is a normal float32.
	f := float32(man) * (1.0 / (1 << 24))
	return math.Float32frombits(sign | math.Float32bits(f))
}

// F32ToF16 narrows a float32 to IEEE 754 half-precision bits, rounding to
// nearest with ties to even. Values beyond the half range become ±Inf,
// tiny values round to subnormals or ±0, NaN stays NaN.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	abs := b & 0x7fffffff
	switch {
	case abs > 0x7f800000: // NaN
		return sign | 0x7e00 | uint16(abs>>13)&0x1ff
	case abs >= 0x477ff000: // >= 65520 (halfway past the largest half, 65504): Inf
		return sign | 0x7c00
	case abs >= 0x38800000: // normal half (>= 2^-14)
		// Rebias the exponent and round the 13 dropped mantissa bits;
		// a carry into the exponent is the correct result.
		v := abs - (112 << 23)
		v += 0xfff + (v>>13)&1
		return sign | uint16(v>>13)
	case abs < 0x33000000: // below 2^-25 (half the smallest subnormal): zero
		return sign
	}
	// Subnormal half: value = m * 2^-24 with m = round(abs * 2^24).
	exp := abs >> 23
	man := abs&0x7fffff | 0x800000   // 24-bit significand, value = man * 2^(exp-150)
	shift := 126 - exp               // to scale to units of 2^-24: man >> (150-24-exp)
	half := uint32(1) << (shift - 1) // shift is in [14, 24] here
	m := man >> shift
	rem := man & (1<<shift - 1)
	if rem > half || (rem == half && m&1 == 1) {
		m++
	}
	return sign | uint16(m)
}

// FP8E4M3ToF32 widens an OCP FP8 E4M3 ("E4M3FN") value to float32: bias 7,
// no infinities, S.1111.111 is NaN, largest finite value 448.
func FP8E4M3ToF32(v uint8) float32 {
	sign := float32(1)
	if v&0x80 != 0 {
		sign = -1
	}
	exp := int(v>>3) & 0xf
	man := float32(v & 7)
	switch {
	case exp == 0xf && v&7 == 7:
		return float32(math.NaN())
	case exp == 0:
		return sign * man * (1.0 / 512) // man/8 * 2^-6
	}
	return sign * (1 + man/8) * float32(math.Ldexp(1, exp-7))
}

// ToFloat32 converts raw little-endian tensor bytes of dtype dt to float32.
// Float dtypes convert exactly (F32, BF16, F16, FP8E4M3); integer dtypes
// (I8, I32, I64) convert by value. len(raw) must be a whole number of
// elements.
func ToFloat32(dt backend.DType, raw []byte) ([]float32, error) {
	size := dt.Bits() / 8
	if size == 0 || dt == backend.I4 {
		return nil, fmt.Errorf("to float32: unsupported dtype %v", dt)
	}
	out := make([]float32, len(raw)/size)
	if err := ToFloat32Into(out, dt, raw); err != nil {
		return nil, err
	}
	return out, nil
}

// ToFloat32Into is ToFloat32 into a caller-owned buffer, which must hold
// exactly len(raw)/element-size values (no allocation).
func ToFloat32Into(out []float32, dt backend.DType, raw []byte) error {
	size := dt.Bits() / 8
	if size == 0 || dt == backend.I4 {
		return fmt.Errorf("to float32: unsupported dtype %v", dt)
	}
	if len(raw)%size != 0 {
		return fmt.Errorf("to float32: %d bytes is not a whole number of %v elements", len(raw), dt)
	}
	if len(out) != len(raw)/size {
		return fmt.Errorf("to float32: %d %v elements into a buffer of %d", len(raw)/size, dt, len(out))
	}
	switch dt {
	case backend.F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case backend.BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	case backend.F16:
		for i := range out {
			out[i] = F16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case backend.FP8E4M3:
		for i, v := range raw {
			out[i] = FP8E4M3ToF32(v)
		}
	case backend.I8:
		for i, v := range raw {
			out[i] = float32(int8(v))
		}
	case backend.I32:
		for i := range out {
			out[i] = float32(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	case backend.I64:
		for i := range out {
			out[i] = float32(int64(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	default:
		return fmt.Errorf("to float32: unsupported dtype %v", dt)
	}
	return nil
}

// FromFloat32 encodes float32 values as little-endian bytes of dtype dt
// (F32, BF16 or F16, rounding to nearest even), the inverse of ToFloat32.
func FromFloat32(dt backend.DType, vals []float32) ([]byte, error) {
	switch dt {
	case backend.F32:
		out := make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
		return out, nil
	case backend.BF16:
		out := make([]byte, 2*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToBF16(v))
		}
		return out, nil
	case backend.F16:
		out := make([]byte, 2*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToF16(v))
		}
		return out, nil
	}
	return nil, fmt.Errorf("from float32: unsupported dtype %v", dt)
}
