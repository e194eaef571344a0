// 16-bit floating-point storage, written once for host and device code (kernels/Math.h's MEG_HOST_DEVICE):
//
//   bf16 (bfloat16): 1 sign, 8 exponent, 7 mantissa bits: the top half of an IEEE binary32;
//   f16 (IEEE binary16): 1 sign, 5 exponent (bias 15), 10 mantissa bits; subnormals below 2^-14, max 65504.
//
// Widening (16 -> 32 bits) is exact. Narrowing (32 -> 16 bits) rounds to nearest, ties to even, as the GPU's
// __float2bfloat16_rn / __float2half_rn do: values beyond the largest finite value round to infinity (f16: |x| >=
// 65520), values below half the smallest subnormal round to a signed zero, infinities stay infinities and a NaN stays
// a (quiet) NaN of the same sign. Everything is integer bit manipulation, so CPU and GPU agree bit for bit.
// loadAsFloat / storeFromFloat read and write element i of a buffer of any kernels::Elem.
#ifndef MEG_KERNELS_HALF_H
#define MEG_KERNELS_HALF_H

#include "kernels/Math.h"

#include <cstdint>
#include <cstring>

namespace meg::kernels {

MEG_HOST_DEVICE inline uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

MEG_HOST_DEVICE inline float bitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

//===-- bf16 -------------------------------------------------------------------------------------------------===//

MEG_HOST_DEVICE inline float bf16ToFloat(uint16_t b) { return bitsFloat(uint32_t(b) << 16); }

MEG_HOST_DEVICE inline uint16_t floatToBf16(float f) {
  uint32_t u = floatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) // NaN: keep the sign and top payload bits, force quiet
    return uint16_t((u >> 16) | 0x40u);
  // Round to nearest even: add 0x7fff plus the lowest kept bit; a carry into the exponent is the right result
  // (including overflow of the largest finite values to infinity).
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

//===-- f16 --------------------------------------------------------------------------------------------------===//

MEG_HOST_DEVICE inline float f16ToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1f) // inf / NaN (payload kept)
    return bitsFloat(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) // normal: rebias 15 -> 127
    return bitsFloat(sign | ((exp + 112u) << 23) | (mant << 13));
  float v = float(mant) * 5.9604644775390625e-8f; // zero / subnormal: mant * 2^-24 (exact)
  return sign ? -v : v;
}

MEG_HOST_DEVICE inline uint16_t floatToF16(float f) {
  uint32_t u = floatBits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) // NaN: quiet, top payload bits kept
    return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  if (a >= 0x477ff000u) // >= 65520 (halfway above 65504, tie to even = up) and infinity
    return uint16_t(sign | 0x7c00u);
  if (a >= 0x38800000u) { // normal f16 (>= 2^-14): rebias 127 -> 15, round the 13 dropped bits to nearest even
    a = a - 0x38000000u + 0xfffu + ((a >> 13) & 1u);
    return uint16_t(sign | (a >> 13));
  }
  // Subnormal f16 or zero: the value in units of 2^-24 is m * 2^(e - 126) with the implicit bit in m.
  uint32_t e = a >> 23;
  uint32_t shift = 126u - e; // >= 14
  if (shift > 24u)
    return sign;
  uint32_t m = (a & 0x7fffffu) | 0x800000u;
  uint32_t q = m >> shift, rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (q & 1u)))
    ++q; // may carry into the smallest normal (0x400), which is its correct encoding
  return uint16_t(sign | q);
}

//===-- Buffers of any element type --------------------------------------------------------------------------===//

MEG_HOST_DEVICE inline int elemBytes(Elem t) { return t == Elem::BF16 || t == Elem::F16 ? 2 : 4; }

/// Element i of x as a float (I32 converted).
MEG_HOST_DEVICE inline float loadAsFloat(const void *x, Elem t, int64_t i) {
  switch (t) {
  case Elem::F32:
    return static_cast<const float *>(x)[i];
  case Elem::BF16:
    return bf16ToFloat(static_cast<const uint16_t *>(x)[i]);
  case Elem::F16:
    return f16ToFloat(static_cast<const uint16_t *>(x)[i]);
  default:
    return float(static_cast<const int32_t *>(x)[i]);
  }
}

/// Stores v as element i of y, rounded to nearest even for 16-bit types (I32: truncated toward zero).
MEG_HOST_DEVICE inline void storeFromFloat(void *y, Elem t, int64_t i, float v) {
  switch (t) {
  case Elem::F32:
    static_cast<float *>(y)[i] = v;
    return;
  case Elem::BF16:
    static_cast<uint16_t *>(y)[i] = floatToBf16(v);
    return;
  case Elem::F16:
    static_cast<uint16_t *>(y)[i] = floatToF16(v);
    return;
  default:
    static_cast<int32_t *>(y)[i] = int32_t(v);
  }
}

} // namespace meg::kernels

#endif
