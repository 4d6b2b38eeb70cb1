// Fused dot-product kernels for MatMul on amd64 (AVX2 + FMA, F16C for F16).
//
// Weights are read in their stored format and widened in registers: a BF16
// value is the top half of a float32, so VPMOVZXWD + VPSLLD $16 widens 8 of
// them exactly; F16 uses VCVTPH2PS; F32 is loaded as is. Activations x are
// float32 rows; accumulation is float32 in several vector registers.
//
// dot1*   one weight row · one x row (decode: memory-bound on the weight
//         stream, 4 accumulators × 8 lanes hide the FMA latency).
// dot2x4* two weight rows × four x rows (prefill: each widened weight vector
//         is reused for 4 tokens from registers and each x vector for 2
//         rows, 8 FMAs per 6 loads, so it runs near the FMA ports' bound).
// dot4x1* four weight rows × one x row (the tokens a step has beyond its
//         groups of 4): each (row, token) sum takes exactly the arithmetic
//         of dot2x4 (one accumulator, the same reduction), so a token's
//         result does not depend on how many tokens share the call.
//
// n (columns) must be a multiple of 8; the Go caller adds the tail.

#include "textflag.h"

#define CVT_BF16(mem, y) VPMOVZXWD mem, y; VPSLLD $16, y, y
#define CVT_F16(mem, y) VCVTPH2PS mem, y
#define CVT_F32(mem, y) VMOVUPS mem, y

// DOT1_PROLOGUE and DOT1_*: x in SI, w in DI, n in CX, column index AX.

// DOT1_32: 32 columns at AX; x in SI, w in DI with S bytes per element and
// O1..O3 the byte offsets of the 2nd..4th group of 8 weights.
#define DOT1_32(CVT, S, O1, O2, O3) \
	CVT((DI)(AX*S), Y4); \
	CVT(O1(DI)(AX*S), Y5); \
	CVT(O2(DI)(AX*S), Y6); \
	CVT(O3(DI)(AX*S), Y7); \
	VFMADD231PS (SI)(AX*4), Y4, Y0; \
	VFMADD231PS 32(SI)(AX*4), Y5, Y1; \
	VFMADD231PS 64(SI)(AX*4), Y6, Y2; \
	VFMADD231PS 96(SI)(AX*4), Y7, Y3

#define DOT1_8(CVT, S) \
	CVT((DI)(AX*S), Y4); \
	VFMADD231PS (SI)(AX*4), Y4, Y0

#define DOT1_PROLOGUE \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	XORQ AX, AX; \
	MOVQ CX, DX; \
	ANDQ $-32, DX

// DOT1_EPILOGUE sums the 4 accumulators into X0.
#define DOT1_EPILOGUE \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y2; \
	VADDPS Y2, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VHADDPS X0, X0, X0; \
	VHADDPS X0, X0, X0; \
	VZEROUPPER

// DOT2X4_8: 8 columns at AX of weight rows DI, R13 against x rows SI, R10,
// R11, R12; Y0..Y3 accumulate row 0 × tokens 0..3, Y4..Y7 row 1.
#define DOT2X4_8(CVT, S) \
	CVT((DI)(AX*S), Y8); \
	CVT((R13)(AX*S), Y9); \
	VMOVUPS (SI)(AX*4), Y10; \
	VFMADD231PS Y8, Y10, Y0; \
	VFMADD231PS Y9, Y10, Y4; \
	VMOVUPS (R10)(AX*4), Y11; \
	VFMADD231PS Y8, Y11, Y1; \
	VFMADD231PS Y9, Y11, Y5; \
	VMOVUPS (R11)(AX*4), Y12; \
	VFMADD231PS Y8, Y12, Y2; \
	VFMADD231PS Y9, Y12, Y6; \
	VMOVUPS (R12)(AX*4), Y13; \
	VFMADD231PS Y8, Y13, Y3; \
	VFMADD231PS Y9, Y13, Y7

#define DOT2X4_PROLOGUE \
	LEAQ (SI)(BX*1), R10; \
	LEAQ (SI)(BX*2), R11; \
	LEAQ (R10)(BX*2), R12; \
	LEAQ (DI)(R8*1), R13; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7; \
	XORQ AX, AX; \
	CMPQ CX, $0

// DOT2X4_EPILOGUE reduces the 8 accumulators into out[0..7]: out[j] is
// row 0 · token j, out[4+j] row 1 · token j.
#define DOT2X4_EPILOGUE \
	VHADDPS Y1, Y0, Y0; \
	VHADDPS Y3, Y2, Y2; \
	VHADDPS Y2, Y0, Y0; \
	VHADDPS Y5, Y4, Y4; \
	VHADDPS Y7, Y6, Y6; \
	VHADDPS Y6, Y4, Y4; \
	VPERM2F128 $0x20, Y4, Y0, Y1; \
	VPERM2F128 $0x31, Y4, Y0, Y2; \
	VADDPS Y2, Y1, Y1; \
	VMOVUPS Y1, (R9); \
	VZEROUPPER

// func dot1BF16(x *float32, w unsafe.Pointer, n int) float32
TEXT ·dot1BF16(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ n+16(FP), CX
	DOT1_PROLOGUE
	JZ   bf16tail
bf16loop32:
	DOT1_32(CVT_BF16, 2, 16, 32, 48)
	ADDQ $32, AX
	CMPQ AX, DX
	JLT  bf16loop32
bf16tail:
	CMPQ AX, CX
	JGE  bf16done
bf16loop8:
	DOT1_8(CVT_BF16, 2)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT  bf16loop8
bf16done:
	DOT1_EPILOGUE
	MOVSS X0, ret+24(FP)
	RET
	MOVSS X0, ret+24(FP)
	RET

// func dot1F16(x *float32, w unsafe.Pointer, n int) float32
TEXT ·dot1F16(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ n+16(FP), CX
	DOT1_PROLOGUE
	JZ   f16tail
f16loop32:
	DOT1_32(CVT_F16, 2, 16, 32, 48)
	ADDQ $32, AX
	CMPQ AX, DX
	JLT  f16loop32
f16tail:
	CMPQ AX, CX
	JGE  f16done
f16loop8:
	DOT1_8(CVT_F16, 2)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT  f16loop8
f16done:
	DOT1_EPILOGUE
	MOVSS X0, ret+24(FP)
	RET

// func dot1F32(x *float32, w unsafe.Pointer, n int) float32
TEXT ·dot1F32(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ n+16(FP), CX
	DOT1_PROLOGUE
	JZ   f32tail
f32loop32:
	DOT1_32(CVT_F32, 4, 32, 64, 96)
	ADDQ $32, AX
	CMPQ AX, DX
	JLT  f32loop32
f32tail:
	CMPQ AX, CX
	JGE  f32done
f32loop8:
	DOT1_8(CVT_F32, 4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT  f32loop8
f32done:
	DOT1_EPILOGUE
	MOVSS X0, ret+24(FP)
	RET

// func dot2x4BF16(x *float32, xstride uintptr, w unsafe.Pointer, wstride uintptr, n int, out *[8]float32)
TEXT ·dot2x4BF16(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ xstride+8(FP), BX
	MOVQ w+16(FP), DI
	MOVQ wstride+24(FP), R8
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), R9
	DOT2X4_PROLOGUE
	JLE  bf16done
bf16loop:
	DOT2X4_8(CVT_BF16, 2)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT  bf16loop
bf16done:
	DOT2X4_EPILOGUE
	RET
	RET

// func dot2x4F16(x *float32, xstride uintptr, w unsafe.Pointer, wstride uintptr, n int, out *[8]float32)
TEXT ·dot2x4F16(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ xstride+8(FP), BX
	MOVQ w+16(FP), DI
	MOVQ wstride+24(FP), R8
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), R9
	DOT2X4_PROLOGUE
	JLE  f16done
f16loop:
	DOT2X4_8(CVT_F16, 2)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT  f16loop
f16done:
	DOT2X4_EPILOGUE
	RET

// func dot2x4F32(x *float32, xstride uintptr, w unsafe.Pointer, wstride uintptr, n int, out *[8]float32)
TEXT ·dot2x4F32(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ xstride+8(FP), BX
	MOVQ w+16(FP), DI
	MOVQ wstride+24(FP), R8
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), R9
	DOT2X4_PROLOGUE
	JLE  f32done
f32loop:
	DOT2X4_8(CVT_F32, 4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT  f32loop
f32done:
	DOT2X4_EPILOGUE
	RET

// DOT4X1_8: 8 columns at AX of weight rows DI, R13, R10, R11 against the
// x row SI; Y0..Y3 accumulate rows 0..3 (the roles of tokens 0..3 in
// DOT2X4_8, so that the epilogue reduces each the same way).
#define DOT4X1_8(CVT, S) \
	VMOVUPS (SI)(AX*4), Y10; \
	CVT((DI)(AX*S), Y8); \
	VFMADD231PS Y8, Y10, Y0; \
	CVT((R13)(AX*S), Y9); \
	VFMADD231PS Y9, Y10, Y1; \
	CVT((R10)(AX*S), Y11); \
	VFMADD231PS Y11, Y10, Y2; \
	CVT((R11)(AX*S), Y12); \
	VFMADD231PS Y12, Y10, Y3

#define DOT4X1_PROLOGUE \
	LEAQ (DI)(R8*1), R13; \
	LEAQ (DI)(R8*2), R10; \
	LEAQ (R13)(R8*2), R11; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	XORQ AX, AX; \
	CMPQ CX, $0

// DOT4X1_EPILOGUE is the row-0 half of DOT2X4_EPILOGUE: out[j] is row j.
#define DOT4X1_EPILOGUE \
	VHADDPS Y1, Y0, Y0; \
	VHADDPS Y3, Y2, Y2; \
	VHADDPS Y2, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VMOVUPS X0, (R9); \
	VZEROUPPER

// func dot4x1BF16(x *float32, w unsafe.Pointer, wstride uintptr, n int, out *[4]float32)
TEXT ·dot4x1BF16(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ wstride+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), R9
	DOT4X1_PROLOGUE
	JLE  bf16done
bf16loop:
	DOT4X1_8(CVT_BF16, 2)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT  bf16loop
bf16done:
	DOT4X1_EPILOGUE
	RET

// func dot4x1F16(x *float32, w unsafe.Pointer, wstride uintptr, n int, out *[4]float32)
TEXT ·dot4x1F16(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ wstride+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), R9
	DOT4X1_PROLOGUE
	JLE  f16done
f16loop:
	DOT4X1_8(CVT_F16, 2)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT  f16loop
f16done:
	DOT4X1_EPILOGUE
	RET

// func dot4x1F32(x *float32, w unsafe.Pointer, wstride uintptr, n int, out *[4]float32)
TEXT ·dot4x1F32(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ wstride+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), R9
	DOT4X1_PROLOGUE
	JLE  f32done
f32loop:
	DOT4X1_8(CVT_F32, 4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT  f32loop
f32done:
	DOT4X1_EPILOGUE
	RET

// func cpuidECX1() uint32 returns CPUID leaf 1's ECX (bit 29: F16C).
TEXT ·cpuidECX1(SB), NOSPLIT, $0-4
	MOVL $1, AX
	XORL CX, CX
	CPUID
	MOVL CX, ret+0(FP)
	RET
