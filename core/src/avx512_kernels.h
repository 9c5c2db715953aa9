// Private to the core: AVX-512 register kernels that several layers share. A 16 x 16 transpose
// of floats, for the loops that turn rows into columns (Conv2d's interleaving of samples,
// gemm's packing of a transposed operand): four rounds of shuffles instead of a scalar load and
// store per float. One step of the 2x2 max pool with stride 2, for MaxPool2d's kernels and for
// Conv2d's convolution, ReLU and pool in one pass.
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>

#include <cstdint>

namespace effml {

// GCC 12 reports its own AVX-512 intrinsics, inlined here, as reading an uninitialized variable
// (the "undefined" vector they pass for an unused mask operand: GCC bug 105593). The callers
// that inline these functions silence the same warnings around themselves.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Lanes [0, n) of a vector, n in [0, 16]: the mask of a vector's first n floats.
inline __mmask16 first_lanes(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }

// r[i] lane j <-> r[j] lane i.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {  // 2 x 2 blocks
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  auto lo = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  auto hi = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  for (int i = 0; i < 16; i += 4) {  // 4 x 4 blocks: r[4q + c], 128-bit block k = column 4k + c
    r[i] = lo(t[i], t[i + 2]);
    r[i + 1] = hi(t[i], t[i + 2]);
    r[i + 2] = lo(t[i + 1], t[i + 3]);
    r[i + 3] = hi(t[i + 1], t[i + 3]);
  }
  for (int c = 0; c < 4; ++c) {  // then the 128-bit blocks, in two rounds
    t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
    t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
    t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
    r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xdd);
  }
}

// Lane i holds 2i: the even columns of a pair of registers, and output i's left input column.
inline __m512i even_lanes() {
  return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}

// Per lane, between a (earlier in PyTorch's scan of the window) and b: b when b > a or b is NaN.
inline __mmask16 pool_pick(__m512 a, __m512 b) {
  return static_cast<__mmask16>(_mm512_cmp_ps_mask(b, a, _CMP_GT_OQ) |
                                _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q));
}

// The pair maximum of one input row held in the register pair (a, b), window i's two columns at
// pair lanes 2i and 2i + 1: its value v and whether it is the right one. With kRelu the values
// are max(x, 0) first (max_ps returns its second operand, +0, for a NaN or a zero first one).
template <bool kRelu>
inline void pool_pairs(__m512 a, __m512 b, __m512& v, __mmask16& right) {
  if (kRelu) {
    a = _mm512_max_ps(a, _mm512_setzero_ps());
    b = _mm512_max_ps(b, _mm512_setzero_ps());
  }
  const __m512i even = even_lanes();
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 e = _mm512_permutex2var_ps(a, even, b);
  const __m512 o = _mm512_permutex2var_ps(a, odd, b);
  right = pool_pick(e, o);
  v = _mm512_mask_blend_ps(right, e, o);
}

// One step of up to 16 windows: their top input rows in the register pair (ta, tb), their
// bottom rows in (ua, ub), window i's top-left input at flat index base[i] of a plane with rows
// of W. Reduced across (left, right), then across (top, bottom), with pool_pick at both steps:
// the same value and index as PyTorch's four-step scan, the first maximum in row-major order or
// the last NaN. Stores y[i] for the lanes i of `out` and, unless argmax is null, the index of
// each window's maximum; with kRelu, the pool of max(x, 0) and -1 for an index where the output
// is 0 (the ReLU before the pool passes no gradient there).
template <bool kRelu>
inline void pool_2x2_step(__m512 ta, __m512 tb, __m512 ua, __m512 ub, __m512i base, int64_t W,
                          __mmask16 out, float* y, int32_t* argmax) {
  __m512 t, u;
  __mmask16 t_right, u_right;
  pool_pairs<kRelu>(ta, tb, t, t_right);
  pool_pairs<kRelu>(ua, ub, u, u_right);
  const __mmask16 bottom = pool_pick(t, u);
  const __m512 v = _mm512_mask_blend_ps(bottom, t, u);
  _mm512_mask_storeu_ps(y, out, v);
  if (!argmax) return;
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i ti = _mm512_mask_add_epi32(base, t_right, base, one);
  const __m512i bl = _mm512_add_epi32(base, _mm512_set1_epi32(static_cast<int32_t>(W)));
  const __m512i ui = _mm512_mask_add_epi32(bl, u_right, bl, one);
  __m512i best = _mm512_mask_blend_epi32(bottom, ti, ui);
  if (kRelu)
    best = _mm512_mask_mov_epi32(best, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_EQ_OQ),
                                 _mm512_set1_epi32(-1));
  _mm512_mask_storeu_epi32(argmax, out, best);
}

#pragma GCC diagnostic pop

}  // namespace effml

#endif
