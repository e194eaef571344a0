// Elementwise kernels.
//
// Binary ops follow numpy broadcasting: shapes are aligned at the trailing dim; a missing or size-1 dim broadcasts.
//   out = a op b, op in {+, -, *, /}.
// Backward of a broadcast operand sums the gradient over the broadcast dims (reduceToShape):
//   d(a+b): da = R(dy), db = R(dy);  d(a-b): db = -R(dy);  d(a*b): da = R(dy*b), db = R(dy*a);
//   d(a/b): da = R(dy/b), db = -R(dy*a/b^2).
// Unary: y = exp(x) (dx = dy*y), y = log(x) (dx = dy/x), y = tanh(x) (dx = dy*(1-y^2)), y = s*x (dx = s*dy).
// Padding mask: y = (dimOffset + j >= valid) ? value : x for x viewed as [outer, n, inner], j the index along the
// middle dim (a shard of a larger dim starts at global index dimOffset); its backward is the same mask with value 0.
#ifndef MEG_KERNELS_CPU_ELEMENTWISE_H
#define MEG_KERNELS_CPU_ELEMENTWISE_H

#include "kernels/Math.h"

#include <cstdint>

namespace meg::kernels::cpu {

using kernels::BinaryOp;
using kernels::broadcastShape;
using kernels::Elem;
using kernels::UnaryOp;

/// out (the broadcast shape) = a op b.
void binary(BinaryOp op, const float *a, const int64_t *shapeA, int rankA, const float *b, const int64_t *shapeB,
            int rankB, float *out);

/// Gradients of out = a op b: da (a's shape) and db (b's shape) are overwritten; either may be null.
/// Mul and Div need `scratch` of numel(broadcast shape) floats; Add and Sub need none.
void binaryBackward(BinaryOp op, const float *a, const int64_t *shapeA, int rankA, const float *b,
                    const int64_t *shapeB, int rankB, const float *dy, float *da, float *db, float *scratch);

/// dx (shapeX) = sum of dy (shapeY) over the dims along which shapeX broadcasts to shapeY.
void reduceToShape(const float *dy, const int64_t *shapeY, int rankY, const int64_t *shapeX, int rankX, float *dx);

void expForward(const float *x, int64_t n, float *y);
void expBackward(const float *y, const float *dy, int64_t n, float *dx);
void logForward(const float *x, int64_t n, float *y);
void logBackward(const float *x, const float *dy, int64_t n, float *dx);
void tanhForward(const float *x, int64_t n, float *y);
void tanhBackward(const float *y, const float *dy, int64_t n, float *dx);
/// out = x broadcast (numpy-style: x aligned to the trailing dims, its size-1 dims repeated) to shapeOut.
void broadcastTo(const float *x, const int64_t *shapeX, int rankX, const int64_t *shapeOut, int rankOut, float *out);
/// y = factor * x (also its own backward; x == y is allowed).
void scale(const float *x, int64_t n, float factor, float *y);
/// y = op(x): exp, log, tanh or factor * x (x == y is allowed).
void unary(UnaryOp op, const float *x, int64_t n, float factor, float *y);
/// y = convert(x) between f32, bf16, f16 and i32 (kernels/Half.h: 16-bit results rounded to nearest even, i32
/// truncated toward zero); x == y is allowed when the element size is kept.
void cast(const void *x, Elem from, void *y, Elem to, int64_t n);
/// y = x with `value` where the global index along the middle dim of [outer, n, inner], dimOffset + j, is >= valid
/// (x == y is allowed).
void maskPadding(const float *x, int64_t outer, int64_t n, int64_t inner, int64_t dimOffset, int64_t valid,
                 float value, float *y);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_ELEMENTWISE_H
