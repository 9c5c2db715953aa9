#include "effml/layers/conv2d.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "effml/gemm.h"
#include "effml/layers/pooling.h"
#include "effml/parallel.h"
#include "../avx512_kernels.h"
#include "../parallel_for.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// xsimd, the SIMD layer of xtensor, gives the register tiles below one portable vector type
// (16 floats with AVX-512, 8 with AVX2, 4 with SSE or NEON).
#if defined(__SSE2__) || defined(__ARM_NEON) || defined(__aarch64__)
#include <xsimd/xsimd.hpp>
#define EFFML_CONV_XSIMD 1
#else
#define EFFML_CONV_XSIMD 0
#endif

// Shape letters: N batch, C input channels of one group (Cin/G), F output channels of one group
// (Cout/G), H x W input image, OH x OW output image, K kernel size, S stride, P padding,
// T = C*K*K the taps of one output channel, Hp x Wp = (H + 2P) x (W + 2P) the padded image.
//
// Four lowerings (choose_lowering): Wide (stride 1: register tiles on the wide grid, below),
// Pointwise (1x1, stride 1, no padding: x is the column matrix of a matrix product), Strided
// (im2col and a matrix product) and Depthwise (a direct loop).

namespace effml {

namespace {

// Samples are spread over threads only when the whole call has at least this many multiply-adds:
// below it, starting the threads costs more than it saves (and much more on a loaded machine).
constexpr int64_t kParallelMinMacs = int64_t{1} << 17;

// Output positions o in [lo, hi) whose input position o*S - P + k lies inside [0, size).
void valid_range(int64_t out_size, int64_t in_size, int64_t S, int64_t P, int64_t k, int64_t& lo,
                 int64_t& hi) {
  const int64_t a = P - k;  // o*S >= P - k
  lo = a <= 0 ? 0 : (a + S - 1) / S;
  const int64_t b = in_size - 1 + P - k;  // o*S <= size - 1 + P - k
  hi = b < 0 ? 0 : std::min(out_size, b / S + 1);
  lo = std::min(lo, hi);
}

// ---- strided: im2col and a matrix product ----------------------------------------------------

// x (C, H, W) -> cols (C*K*K, OH*OW): row (c, kh, kw), column (oh, ow); zeros where the window
// reaches into the padding.
void im2col(const float* x, int64_t C, int64_t H, int64_t W, int64_t K, int64_t S, int64_t P,
            int64_t OH, int64_t OW, float* cols) {
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t kh = 0; kh < K; ++kh) {
      for (int64_t kw = 0; kw < K; ++kw) {
        float* row = cols + ((c * K + kh) * K + kw) * OH * OW;
        int64_t lo, hi;
        valid_range(OW, W, S, P, kw, lo, hi);
        for (int64_t oh = 0; oh < OH; ++oh) {
          float* d = row + oh * OW;
          const int64_t ih = oh * S - P + kh;
          if (ih < 0 || ih >= H) {
            std::fill(d, d + OW, 0.0f);
            continue;
          }
          const float* src = x + (c * H + ih) * W - P + kw;  // src[ow*S] is x[c, ih, ow*S-P+kw]
          for (int64_t ow = 0; ow < lo; ++ow) d[ow] = 0.0f;
          for (int64_t ow = lo; ow < hi; ++ow) d[ow] = src[ow * S];
          for (int64_t ow = hi; ow < OW; ++ow) d[ow] = 0.0f;
        }
      }
    }
  }
}

// The adjoint of im2col: dx (C, H, W) += every column entry back at its input position.
void col2im_add(const float* cols, int64_t C, int64_t H, int64_t W, int64_t K, int64_t S,
                int64_t P, int64_t OH, int64_t OW, float* dx) {
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t kh = 0; kh < K; ++kh) {
      for (int64_t kw = 0; kw < K; ++kw) {
        const float* row = cols + ((c * K + kh) * K + kw) * OH * OW;
        int64_t lo, hi;
        valid_range(OW, W, S, P, kw, lo, hi);
        for (int64_t oh = 0; oh < OH; ++oh) {
          const int64_t ih = oh * S - P + kh;
          if (ih < 0 || ih >= H) continue;
          const float* d = row + oh * OW;
          float* dst = dx + (c * H + ih) * W - P + kw;
          for (int64_t ow = lo; ow < hi; ++ow) dst[ow * S] += d[ow];
        }
      }
    }
  }
}

// ---- stride 1: register tiles on the "wide" grid ---------------------------------------------
// Lay one sample's output out on a "wide" grid of OH rows of Wp positions: output (oh, ow) sits
// at p = oh * Wp + ow, and the positions with ow >= OW are scratch. Then the input that tap
// t = (c, kh, kw) multiplies at position p is xpad[p + off_t] in the flat zero-padded image,
// off_t = c * Hp * Wp + kh * Wp + kw: consecutive outputs read consecutive inputs, for every tap.
// So the three products of a convolution read their operands in place, and the column matrix
// of im2col (cols[t][p] = xpad[off_t + p]) is never written:
//   forward  y_wide[f][p] = sum_t W[f][t] * xpad[off_t + p]
//   weights  dW[f][t]    += sum_p dy_wide[f][p] * xpad[off_t + p]   (dy_wide: zeros at scratch)
//   input    dcols[t][p]  = sum_f W[f][t] * dy_wide[f][p],  then  dxpad[off_t + p] += dcols[t][p]
// Each runs as register tiles (below): a block of outputs stays in registers while its whole
// reduction streams through, each vector load feeding several fused multiply-adds, as in the
// micro-kernel of a matrix-product library, minus the packing. The grid holds
// L = (OH - 1) * Wp + OW positions, rounded up to whole vectors (the last vector reads the zeros
// that follow the image).
//
// The scratch positions cost (Wp - OW) / OW more work: 14% in LeNet-5's first layer, 40% in its
// second (a 5x5 kernel on 14x14 inputs), and the taps' loads mostly straddle cache lines. So a
// thread with kVec samples left interleaves them when each output sums enough products
// (interleave(), below): a block x_b (Cin, Hp, Wp, NB) with NB = kVec holds one vector per pixel,
// one value per sample. Position p = (oh * Wp + ow) * NB + n is output (oh, ow) of sample n, tap
// t reads p + off_t with off_t = ((c * Hp + kh) * Wp + kw) * NB, every load is aligned, and each
// output row is a run of OW * NB positions with no scratch at all; the price is transposing the
// inputs and outputs in and out of the block. A single sample is the same layout with NB = 1,
// its output rows merged into one run over the wide grid.

#if EFFML_CONV_XSIMD
using Vec = xsimd::batch<float>;  // one SIMD register of floats
inline Vec vload(const float* p) { return Vec::load_unaligned(p); }
inline void vstore(float* p, const Vec& v) { v.store_unaligned(p); }
inline Vec vfma(const Vec& a, const Vec& b, const Vec& c) { return xsimd::fma(a, b, c); }
inline float vsum(const Vec& v) { return xsimd::hadd(v); }
#else
using Vec = float;  // no SIMD instruction set: one float per "vector", the same loops
inline Vec vload(const float* p) { return *p; }
inline void vstore(float* p, Vec v) { *p = v; }
inline Vec vfma(Vec a, Vec b, Vec c) { return a * b + c; }
inline float vsum(Vec v) { return v; }
#endif
constexpr int64_t kVec = static_cast<int64_t>(sizeof(Vec) / sizeof(float));  // floats per Vec

// The tiles' short loops over rows and vectors must be unrolled completely, or GCC keeps the
// accumulator arrays in memory instead of registers.
#if defined(__GNUC__)
#define EFFML_UNROLL _Pragma("GCC unroll 16")
#else
#define EFFML_UNROLL
#endif

// GCC turns a vector that several multiply-adds use into a memory operand of each of them, one
// load per use, which leaves the weight-gradient tile waiting on loads (17% slower on LeNet-5's
// first layer). An empty asm statement that may change the vector in its register keeps it
// there; other compilers and targets need no such hint.
#if EFFML_CONV_XSIMD && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
inline void keep_in_register(Vec& v) { asm("" : "+v"(v.data)); }
#else
inline void keep_in_register(Vec&) {}
#endif

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Where a tile's rows go: rows r at out + r * ldo (set), or, for the input gradient, added
// into out + dst[r] for the rows r < rows (the rows past them are padding).
struct TileOut {
  float* out;
  int64_t ldo;
  const int64_t* dst;  // null: set rows at out + r * ldo
  int64_t rows;
};

// The sums of a register tile: acc[r][m] = sum_k coef[k][r] * src[off[k] + m * kVec + (0..kVec))
// for the NR rows r and the MV vectors m; coef is (nk, NR). NR * MV accumulators (24 of the 32
// AVX-512 registers) stay in registers for the whole sum over k.
template <int NR, int MV>
inline void tile_sums(const float* src, const int64_t* off, int64_t nk, const float* coef,
                      Vec (&acc)[NR][MV]) {
  EFFML_UNROLL
  for (int r = 0; r < NR; ++r) {
    EFFML_UNROLL
    for (int m = 0; m < MV; ++m) acc[r][m] = Vec(0.0f);
  }
  for (int64_t k = 0; k < nk; ++k) {
    Vec s[MV];  // MV vectors of column k of cols(src), loaded once, used NR times
    EFFML_UNROLL
    for (int m = 0; m < MV; ++m) s[m] = vload(src + off[k] + m * kVec);
    EFFML_UNROLL
    for (int r = 0; r < NR; ++r) {
      const Vec c(coef[k * NR + r]);  // one coefficient, broadcast, used MV times
      EFFML_UNROLL
      for (int m = 0; m < MV; ++m) acc[r][m] = vfma(c, s[m], acc[r][m]);
    }
  }
}

// The register tile of the products: out[r][j] = sum_k coef[k][r] * src[off[k] + j] for the NR
// rows r and the MV vectors of columns j (tile_sums), stored or added as `to` says.
template <int NR, int MV>
void wide_tile(const float* src, const int64_t* off, int64_t nk, const float* coef,
               const TileOut& to) {
  Vec acc[NR][MV];
  tile_sums<NR, MV>(src, off, nk, coef, acc);
  if (to.dst) {
    EFFML_UNROLL
    for (int r = 0; r < NR; ++r) {
      if (r >= to.rows) break;
      float* o = to.out + to.dst[r];
      EFFML_UNROLL
      for (int m = 0; m < MV; ++m) vstore(o + m * kVec, vload(o + m * kVec) + acc[r][m]);
    }
    return;
  }
  EFFML_UNROLL
  for (int r = 0; r < NR; ++r) {
    EFFML_UNROLL
    for (int m = 0; m < MV; ++m) vstore(to.out + r * to.ldo + m * kVec, acc[r][m]);
  }
}

// A matrix a (R, K), a(r, k) = src[r * rs + k * ks], packed as wide_tile reads its coefficients:
// one (K, nr) block per nr rows, element (r, k) at (r - r % nr) * K + k * nr + r % nr. The rows
// past R up to the next multiple of nr are left as they are in out (the callers zero them).
void pack_tile_rows(const float* src, int64_t R, int64_t K, int64_t rs, int64_t ks, int nr,
                    float* out) {
  for (int64_t r = 0; r < R; ++r)
    for (int64_t k = 0; k < K; ++k)
      out[(r - r % nr) * K + k * nr + r % nr] = src[r * rs + k * ks];
}

// out (R, ldo), columns [0, n) = wide_tile over R / NR row blocks and n / kVec vectors: three at
// a time, then two and two when four are left (a lone vector keeps only NR accumulators busy),
// or the two or one left. coef holds one (nk, NR) block per row block. n is a whole number of
// vectors and src[off[k] + j] is readable for every j < n. With to.dst, row r's columns are
// added into to.out + to.dst[r] instead, for r < to.rows.
template <int NR>
void wide_product(const float* src, const int64_t* off, int64_t nk, const float* coef, int64_t R,
                  const TileOut& to, int64_t n) {
  for (int64_t r0 = 0; r0 < R; r0 += NR) {
    const float* c = coef + r0 * nk;
    auto at = [&](int64_t j) {  // the tile at row r0, column j
      return to.dst ? TileOut{to.out + j, 0, to.dst + r0, to.rows - r0}
                    : TileOut{to.out + r0 * to.ldo + j, to.ldo, nullptr, 0};
    };
    int64_t j = 0;
    for (; n - j > 4 * kVec || n - j == 3 * kVec; j += 3 * kVec)
      wide_tile<NR, 3>(src + j, off, nk, c, at(j));
    for (; n - j >= 2 * kVec; j += 2 * kVec) wide_tile<NR, 2>(src + j, off, nk, c, at(j));
    if (n - j == kVec) wide_tile<NR, 1>(src + j, off, nk, c, at(j));
  }
}

void wide_product(int nr, const float* src, const int64_t* off, int64_t nk, const float* coef,
                  int64_t R, const TileOut& to, int64_t n) {
  if (nr == 8) wide_product<8>(src, off, nk, coef, R, to, n);
  if (nr == 6) wide_product<6>(src, off, nk, coef, R, to, n);
  if (nr == 4) wide_product<4>(src, off, nk, coef, R, to, n);
}

// A run of n positions (a whole number of vectors) that starts at a in the gradient rows and at
// b in the inputs.
struct Run {
  int64_t a, b, n;
};

// The register tile of the weight gradient: dw[r][q] += sum over the runs and their positions j
// of a[r * lda + run.a + j] * b[off[q] + run.b + j], for the NR rows r and the NQ taps q. The
// NR * NQ sums stay in registers across all the runs, as vectors of partial sums added up once
// at the end.
template <int NR, int NQ>
void wide_dw_tile(const float* a, int64_t lda, const float* b, const int64_t* off,
                  const std::vector<Run>& runs, float* dw, int64_t ldw) {
  Vec acc[NR][NQ];
  EFFML_UNROLL
  for (int r = 0; r < NR; ++r) {
    EFFML_UNROLL
    for (int q = 0; q < NQ; ++q) acc[r][q] = Vec(0.0f);
  }
  for (const Run& run : runs) {
    const float* ar = a + run.a;
    const float* bq[NQ];
    EFFML_UNROLL
    for (int q = 0; q < NQ; ++q) bq[q] = b + run.b + off[q];
    for (int64_t j = 0; j < run.n; j += kVec) {
      Vec bv[NQ];  // the NQ taps' inputs at positions j, loaded once, used NR times
      EFFML_UNROLL
      for (int q = 0; q < NQ; ++q) bv[q] = vload(bq[q] + j);
      EFFML_UNROLL
      for (int r = 0; r < NR; ++r) {
        Vec av = vload(ar + r * lda + j);
        keep_in_register(av);
        EFFML_UNROLL
        for (int q = 0; q < NQ; ++q) acc[r][q] = vfma(av, bv[q], acc[r][q]);
      }
    }
  }
  EFFML_UNROLL
  for (int r = 0; r < NR; ++r) {
    EFFML_UNROLL
    for (int q = 0; q < NQ; ++q) dw[r * ldw + q] += vsum(acc[r][q]);
  }
}

// dw (R, Q) += the tiles above over R / NR rows and Q / NQ taps; a is (R, lda).
template <int NR, int NQ>
void wide_dw(const float* a, int64_t lda, const float* b, const int64_t* off,
             const std::vector<Run>& runs, int64_t R, int64_t Q, float* dw) {
  for (int64_t r0 = 0; r0 < R; r0 += NR)
    for (int64_t q0 = 0; q0 < Q; q0 += NQ)
      wide_dw_tile<NR, NQ>(a + r0 * lda, lda, b, off + q0, runs, dw + r0 * Q + q0, Q);
}

void wide_dw(int nr, const float* a, int64_t lda, const float* b, const int64_t* off,
             const std::vector<Run>& runs, int64_t R, int64_t Q, float* dw) {
  if (nr == 8) wide_dw<8, 3>(a, lda, b, off, runs, R, Q, dw);
  if (nr == 6) wide_dw<6, 4>(a, lda, b, off, runs, R, Q, dw);
  if (nr == 4) wide_dw<4, 6>(a, lda, b, off, runs, R, Q, dw);
}

// Taps per weight-gradient tile for a tile of nr rows (24 accumulators in all).
int64_t dw_tile_taps(int nr) { return 24 / nr; }

// Rows of a register tile for R output rows: 8 (the most work per load) unless that pads R by
// more than an eighth, then whichever of 6 and 4 pads it the least. The padding rows compute
// values that are thrown away.
int tile_rows(int64_t R) {
  if (8 * round_up(R, 8) <= 9 * R) return 8;
  return round_up(R, 6) <= round_up(R, 4) ? 6 : 4;
}

// The most positions of a chunk in which a product of R rows is written out, so that the chunk
// (R, chunk) stays within about 128 KB whatever the image size: whole vectors, at least three.
int64_t chunk_len(int64_t R) { return std::max(3 * kVec, int64_t{32768} / R / kVec * kVec); }

// A run of n positions is written out in chunks_of(n, chunk) chunks, split as evenly as whole
// vectors allow (7 vectors in at most 3: 3, 2 and 2, not 3, 3 and a lone one); chunk i starts
// at chunk_start(n, count, i) and ends where chunk i + 1 starts.
int64_t chunks_of(int64_t n, int64_t chunk) { return (n + chunk - 1) / chunk; }
int64_t chunk_start(int64_t n, int64_t count, int64_t i) { return n / kVec * i / count * kVec; }

// The geometry of a block of NB samples on the wide grid (see above).
struct WideGrid {
  int64_t Cin, C, F, H, W, K, P, OH, OW, NB;
  int64_t Hp() const { return H + 2 * P; }
  int64_t Wp() const { return W + 2 * P; }
  int64_t plane() const { return Hp() * Wp() * NB; }  // floats per channel
  int64_t T() const { return C * K * K; }
  // Positions per filter row: every output row, in whole vectors.
  int64_t len() const { return NB == 1 ? round_up((OH - 1) * Wp() + OW, kVec) : OH * Wp() * NB; }
  // A block of padded inputs, then the zeros that the last vector of the grid may read.
  int64_t xlen() const { return Cin * plane() + kVec; }
  // The runs of positions that hold outputs: NB = 1, one over the whole grid (its scratch
  // positions cost less to compute than to skip); NB = kVec, one per output row.
  std::vector<Run> runs() const {
    if (NB == 1) return {Run{0, 0, len()}};
    std::vector<Run> r;
    for (int64_t oh = 0; oh < OH; ++oh) r.push_back(Run{oh * Wp() * NB, oh * Wp() * NB, OW * NB});
    return r;
  }
  // off (Q) = the offsets of the T taps (c, kh, kw) in a group's block, then zeros (the padding
  // taps of the weight-gradient tiles read valid memory and are thrown away).
  std::vector<int64_t> tap_offsets(int64_t Q) const {
    std::vector<int64_t> off(static_cast<std::size_t>(Q), 0);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t kh = 0; kh < K; ++kh)
        for (int64_t kw = 0; kw < K; ++kw)
          off[static_cast<std::size_t>((c * K + kh) * K + kw)] = ((c * Hp() + kh) * Wp() + kw) * NB;
    return off;
  }
};

// Whether a thread interleaves kVec samples at a time: when each output sums enough products
// (T = C * K * K of them) to pay for the transposes, about one pass over the inputs and the
// outputs. Measured on LeNet-5 and VGG at batch 64: a clear gain from T = 144 up (LeNet-5's
// second layer, 1.7 ms -> 1.2 ms per forward and backward), none at T = 9 or 25 (the layers
// on one input channel, whose outputs are many and cheap). Measured again once the transposes
// ran in registers, LeNet-5's first layer (T = 25) interleaved: its backward alone 270 -> 215 us
// per batch of 64, its forward 200 -> 210 us: its forward stays on the wide grid, its backward
// interleaves (see Conv2d::backward).
bool interleave(const WideGrid& g) { return kVec > 1 && g.T() >= 32; }

// Interleaving kVec samples and back is a transpose of 16 x 16 blocks (sample, column) with
// AVX-512: in registers, four rounds of shuffles instead of a scalar load and store per float.
// A LeNet-5 training epoch spent 7 to 8% in these loops, scalar.
#if EFFML_CONV_XSIMD && defined(__AVX512F__)
constexpr bool kBlockTranspose = kVec == 16;
// GCC 12's false warnings from the shuffles of transpose16, inlined here (see avx512_kernels.h).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// d[w * 16 + n] = s[n * ld + w] for the 16 samples n and the L <= 16 columns w.
inline void interleave_block(const float* s, int64_t ld, int64_t L, float* d) {
  const __mmask16 m = first_lanes(L);
  __m512 r[16];
  for (int n = 0; n < 16; ++n) r[n] = _mm512_maskz_loadu_ps(m, s + n * ld);
  transpose16(r);
  // Unrolled with a test per column: as a loop to L, GCC spilled r to the stack and called
  // memcpy (7% of LeNet-5's first-layer backward).
  EFFML_UNROLL
  for (int w = 0; w < 16; ++w)
    if (w < L) _mm512_storeu_ps(d + w * 16, r[w]);
}

// d[n * ld + w] = s[w * ls + n] (+ bias[n * bias_step], unless bias is null) for the 16 lanes n
// and the L <= 16 columns w: the transpose back, for samples (bias_step 0: one channel's bias)
// or for output channels in the lanes (bias_step 1).
inline void deinterleave_block(const float* s, int64_t ls, int64_t L, const float* bias,
                               int64_t bias_step, float* d, int64_t ld) {
  const __mmask16 m = first_lanes(L);
  __m512 r[16];
  for (int64_t w = 0; w < 16; ++w) r[w] = w < L ? _mm512_loadu_ps(s + w * ls) : _mm512_setzero_ps();
  transpose16(r);
  if (bias)
    for (int n = 0; n < 16; ++n) r[n] = _mm512_add_ps(r[n], _mm512_set1_ps(bias[n * bias_step]));
  for (int n = 0; n < 16; ++n) _mm512_mask_storeu_ps(d + n * ld, m, r[n]);
}
#pragma GCC diagnostic pop
#else
constexpr bool kBlockTranspose = false;
inline void interleave_block(const float*, int64_t, int64_t, float*) {}
inline void deinterleave_block(const float*, int64_t, int64_t, const float*, int64_t, float*,
                               int64_t) {}
#endif

// d[w * NB + n] = s[n * ld + w] for the NB samples n and the L columns w.
template <int64_t NB>
void interleave_rows(const float* s, int64_t ld, int64_t L, float* d) {
  if (NB == 16 && kBlockTranspose) {
    for (int64_t w = 0; w < L; w += 16)
      interleave_block(s + w, ld, std::min<int64_t>(16, L - w), d + w * 16);
    return;
  }
  for (int64_t w = 0; w < L; ++w)
    for (int64_t n = 0; n < NB; ++n) d[w * NB + n] = s[n * ld + w];
}

// d[n * ld + w] = s[w * NB + n] (+ *bias, unless null) for the NB samples n and the L columns w.
template <int64_t NB>
void deinterleave_rows(const float* s, int64_t L, const float* bias, float* d, int64_t ld) {
  if (NB == 16 && kBlockTranspose) {
    for (int64_t w = 0; w < L; w += 16)
      deinterleave_block(s + w * 16, 16, std::min<int64_t>(16, L - w), bias, 0, d + w, ld);
    return;
  }
  const float b = bias ? *bias : 0.0f;
  for (int64_t n = 0; n < NB; ++n)
    for (int64_t w = 0; w < L; ++w) d[n * ld + w] = bias ? s[w * NB + n] + b : s[w * NB + n];
}

// x_b (xlen) = the NB samples x (NB, Cin, H, W) padded with P zeros and interleaved; each float
// is written once.
template <int64_t NB>
void pack_input(const WideGrid& g, const float* x, float* xb) {
  const int64_t H = g.H, W = g.W, P = g.P, Wp = g.Wp(), sample = g.Cin * H * W;
  float* d = xb;
  for (int64_t c = 0; c < g.Cin; ++c) {
    std::fill(d, d + P * Wp * NB, 0.0f);  // the top border
    d += P * Wp * NB;
    for (int64_t h = 0; h < H; ++h, d += Wp * NB) {
      const float* s = x + (c * H + h) * W;
      std::fill(d, d + P * NB, 0.0f);
      interleave_rows<NB>(s, sample, W, d + P * NB);
      std::fill(d + (P + W) * NB, d + Wp * NB, 0.0f);
    }
    std::fill(d, d + P * Wp * NB, 0.0f);  // the bottom border
    d += P * Wp * NB;
  }
  std::fill(d, d + kVec, 0.0f);
}

// dy_b (G, Fp, len) = dy of the NB samples (NB, G * F, OH, OW) at their positions. With NB = 1
// the scratch positions and the tail are zeros, since the run over the grid reads them; the
// rows f >= F are zeros.
template <int64_t NB>
void pack_grad(const WideGrid& g, int64_t G, int64_t Fp, const float* dy, float* dyb) {
  const int64_t OH = g.OH, OW = g.OW, Wp = g.Wp(), len = g.len(), sample = G * g.F * OH * OW;
  for (int64_t b = 0; b < G; ++b)
    for (int64_t f = 0; f < Fp; ++f) {
      float* row = dyb + (b * Fp + f) * len;
      if (f >= g.F) {
        std::fill(row, row + len, 0.0f);
        continue;
      }
      const float* s = dy + (b * g.F + f) * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        float* d = row + oh * Wp * NB;
        interleave_rows<NB>(s + oh * OW, sample, OW, d);
        if (NB == 1) std::fill(d + OW, oh + 1 < OH ? d + Wp : row + len, 0.0f);
      }
    }
}

// y[0, n) = s[0, n) + b. With AVX-512 the last partial vector is a masked load and store: rows
// of 28 or 10 outputs otherwise end in up to 15 scalar steps (LeNet-5's first layer spent 1.3 of
// its 4.2 us at batch 1 copying its outputs out of the wide grid).
inline void add_to_row(const float* s, float b, int64_t n, float* y) {
#if defined(__AVX512F__)
  const __m512 vb = _mm512_set1_ps(b);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(s + i), vb));
  if (i < n) {
    const __mmask16 m = first_lanes(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, s + i), vb));
  }
#else
  for (int64_t i = 0; i < n; ++i) y[i] = s[i] + b;
#endif
}

// y of the NB samples (NB, F, OH, OW) with sample stride `sample`, at the outputs among the
// positions [p0, p1) = out (F, ldo) + bias, where column j of out is position p0 + j; bias is
// (F) or null. p0 and p1 are multiples of NB.
template <int64_t NB>
void unpack_output(const WideGrid& g, const float* out, int64_t ldo, int64_t p0, int64_t p1,
                   const float* bias, int64_t sample, float* y) {
  const int64_t OH = g.OH, OW = g.OW, Wp = g.Wp();
  const int64_t pix0 = p0 / NB, pix1 = std::min(p1 / NB, (OH - 1) * Wp + OW);
  for (int64_t f = 0; f < g.F; ++f) {
    const float b = bias ? bias[f] : 0.0f;
    const float* o = out + f * ldo;
    for (int64_t oh = pix0 / Wp; oh * Wp < pix1; ++oh) {
      const int64_t lo = std::max<int64_t>(pix0 - oh * Wp, 0), hi = std::min(OW, pix1 - oh * Wp);
      const float* src = o + (oh * Wp + lo) * NB - p0;  // src[(ow - lo) * NB + n]: (oh, ow, n)
      float* yr = y + (f * OH + oh) * OW + lo;              // yr[n * sample + ow - lo]
      if (NB == 1)
        add_to_row(src, b, hi - lo, yr);
      else
        deinterleave_rows<NB>(src, hi - lo, bias ? bias + f : nullptr, yr, sample);
    }
  }
}

// dx of the NB samples (NB, Cin, H, W) = the interior of dx_b (Cin, Hp, Wp, NB).
template <int64_t NB>
void unpack_grad_input(const WideGrid& g, const float* dxb, float* dx) {
  const int64_t H = g.H, W = g.W, P = g.P, Wp = g.Wp(), sample = g.Cin * H * W;
  for (int64_t c = 0; c < g.Cin; ++c)
    for (int64_t h = 0; h < H; ++h) {
      const float* s = dxb + ((c * g.Hp() + h + P) * Wp + P) * NB;
      deinterleave_rows<NB>(s, W, nullptr, dx + (c * H + h) * W, sample);
    }
}

// ---- one sample, output rows of two vectors ---------------------------------------------------
// When the padded width is two vectors (LeNet-5's first layer: 28 + 2 * 2 = 32) each output row
// is two vectors of the grid, the second ending in the scratch columns. A tile of NR filters
// then covers RV rows (2 * RV vectors) and writes them straight into y, the scratch lanes masked
// off, with no chunk of y_b to copy out (that copy took 17% of LeNet-5's first layer at batch
// 64). Two rows per tile also read fewer vectors per multiply-add than three vectors did: NR
// broadcasts and 4 loads for 4 * NR of them.
// Where a row tile's outputs go: y (F, OH, OW); or, with pooled, only the 2x2 max pool of their
// ReLU, pooled (F, OH / 2, OW / 2), and its argmax in the (OH, OW) plane (null in evaluation).
struct RowOut {
  float* y;
  float* pooled;
  int32_t* argmax;
};

#if EFFML_CONV_XSIMD && defined(__AVX512F__)
template <int NR, int RV>
void row_tile(const float* src, const int64_t* off, int64_t nk, const float* coef, int64_t F,
              const float* bias, int64_t oh, int64_t OH, int64_t OW, const RowOut& to) {
  constexpr int MV = 2 * RV;
  Vec sums[NR][MV];
  tile_sums<NR, MV>(src, off, nk, coef, sums);
  __m512 acc[NR][MV];  // the same registers, as AVX-512 vectors for the masked stores
  EFFML_UNROLL
  for (int r = 0; r < NR; ++r) {
    EFFML_UNROLL
    for (int m = 0; m < MV; ++m) acc[r][m] = sums[r][m].data;
  }
  const int64_t OHW = OH * OW;
  if (to.pooled) {  // rows oh and oh + 1 -> pooled row oh / 2 (RV == 2)
    const int64_t POW = OW / 2, PHW = OH / 2 * POW, o = oh / 2 * POW;
    const __m512i base =
        _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(oh * OW)), even_lanes());
    EFFML_UNROLL
    for (int r = 0; r < NR; ++r) {
      if (r >= F) break;  // the packed rows past F are padding
      const __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);
      pool_2x2_step<true>(_mm512_add_ps(acc[r][0], b), _mm512_add_ps(acc[r][1], b),
                          _mm512_add_ps(acc[r][MV - 2], b), _mm512_add_ps(acc[r][MV - 1], b),
                          base, OW, first_lanes(POW),
                          to.pooled + r * PHW + o, to.argmax ? to.argmax + r * PHW + o : nullptr);
    }
    return;
  }
  const __mmask16 tail = first_lanes(OW - 16);
  EFFML_UNROLL
  for (int r = 0; r < NR; ++r) {
    if (r >= F) break;  // the packed rows past F are padding
    const __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);
    EFFML_UNROLL
    for (int j = 0; j < RV; ++j) {
      float* row = to.y + r * OHW + (oh + j) * OW;
      _mm512_storeu_ps(row, _mm512_add_ps(acc[r][2 * j], b));
      _mm512_mask_storeu_ps(row + 16, tail, _mm512_add_ps(acc[r][2 * j + 1], b));
    }
  }
}

// y (F, OH, OW) of one sample from its block xb (the wide grid, Wp = 32), the weights packed in
// (T, NR) blocks of NR filters (Fp rows), bias (F) or null; or its pooled ReLU (see RowOut),
// where an odd last row, which the pool does not read, is not computed.
template <int NR>
void row_pair_product(const WideGrid& g, const float* xb, const int64_t* off, const float* wpack,
                      int64_t Fp, const float* bias, const RowOut& to) {
  const int64_t T = g.T(), OH = g.OH, OW = g.OW, Wp = g.Wp();
  const int64_t OHW = OH * OW, PHW = OH / 2 * (OW / 2);
  for (int64_t r0 = 0; r0 < Fp; r0 += NR) {
    const float* c = wpack + r0 * T;
    const float* b = bias ? bias + r0 : nullptr;
    const RowOut at{to.y ? to.y + r0 * OHW : nullptr, to.pooled ? to.pooled + r0 * PHW : nullptr,
                    to.argmax ? to.argmax + r0 * PHW : nullptr};
    const int64_t F = g.F - r0;
    int64_t oh = 0;
    for (; oh + 2 <= OH; oh += 2) row_tile<NR, 2>(xb + oh * Wp, off, T, c, F, b, oh, OH, OW, at);
    if (oh < OH && !to.pooled) row_tile<NR, 1>(xb + oh * Wp, off, T, c, F, b, oh, OH, OW, at);
  }
}

// Whether a one-sample block takes row_pair_product: rows of two whole vectors with outputs in
// both, and tiles of at most 6 filters (4 vectors each: 24 accumulators).
bool row_pairs(const WideGrid& g, int nr) {
  return g.NB == 1 && g.Wp() == 2 * kVec && g.OW > kVec && nr <= 6;
}

void row_pair_product(int nr, const WideGrid& g, const float* xb, const int64_t* off,
                      const float* wpack, int64_t Fp, const float* bias, const RowOut& to) {
  if (nr == 6) row_pair_product<6>(g, xb, off, wpack, Fp, bias, to);
  if (nr == 4) row_pair_product<4>(g, xb, off, wpack, Fp, bias, to);
}
#else
bool row_pairs(const WideGrid&, int) { return false; }
void row_pair_product(int, const WideGrid&, const float*, const int64_t*, const float*, int64_t,
                      const float*, const RowOut&) {}
#endif

// ---- one sample, output channels in the vector lanes ------------------------------------------
// A block of one sample computes the wide grid's scratch columns too: 40% more products in
// LeNet-5's second layer (10 outputs in rows of 14), 29% in the VGG's 7x7 layers. When a group's
// output channels fill whole vectors (F % kVec == 0), vectors over the channels waste nothing:
// for the R consecutive outputs ow0 + r of row oh,
//   out[r][f] = sum_t xpad[oh * Wp + off_t + ow0 + r] * Wt[t][f]
// one input value (broadcast) times one vector of kVec channels per multiply-add, with Wt (T, F)
// the group's weights transposed. The price is the transpose of the outputs into (F, OH, OW)
// (16 x 16 blocks in registers with AVX-512, a scalar store per output elsewhere);
// channel_lanes() weighs the two.

// The register tile: out (R, FV * kVec) = the R outputs at src[off[t] + r] of the FV * kVec
// channels whose weights are wt[t * ldw + j], j < FV * kVec.
template <int R, int FV>
void channel_tile(const float* src, const int64_t* off, int64_t T, const float* wt, int64_t ldw,
                  float* out) {
  Vec acc[R][FV];
  EFFML_UNROLL
  for (int r = 0; r < R; ++r) {
    EFFML_UNROLL
    for (int v = 0; v < FV; ++v) acc[r][v] = Vec(0.0f);
  }
  for (int64_t t = 0; t < T; ++t) {
    Vec w[FV];  // FV vectors of channels of tap t, loaded once, used R times
    EFFML_UNROLL
    for (int v = 0; v < FV; ++v) w[v] = vload(wt + t * ldw + v * kVec);
    const float* s = src + off[t];
    EFFML_UNROLL
    for (int r = 0; r < R; ++r) {
      const Vec a(s[r]);  // one input value, broadcast, used FV times
      EFFML_UNROLL
      for (int v = 0; v < FV; ++v) acc[r][v] = vfma(a, w[v], acc[r][v]);
    }
  }
  EFFML_UNROLL
  for (int r = 0; r < R; ++r) {
    EFFML_UNROLL
    for (int v = 0; v < FV; ++v) vstore(out + (r * FV + v) * kVec, acc[r][v]);
  }
}

// channel_tile<R, FV> for a run-time R in [1, RM].
template <int RM, int FV>
void channel_tile_of(int R, const float* src, const int64_t* off, int64_t T, const float* wt,
                     int64_t ldw, float* out) {
  if constexpr (RM == 1) {
    channel_tile<1, FV>(src, off, T, wt, ldw, out);
  } else {
    if (R == RM)
      channel_tile<RM, FV>(src, off, T, wt, ldw, out);
    else
      channel_tile_of<RM - 1, FV>(R, src, off, T, wt, ldw, out);
  }
}

// y (FB, OH, OW) with channel stride OHW = the FB = FV * kVec channels of one sample whose
// transposed weights start at wt (row stride ldw), + bias (FB) or none; xpad is the sample's
// padded group (g.plane() floats per channel, NB = 1) and off its tap offsets. Each output row
// is covered by tiles of RMAX outputs and one of the rest (RMAX * FV accumulators stay in
// registers).
template <int FV>
void channel_rows(const WideGrid& g, const float* xpad, const int64_t* off, const float* wt,
                  int64_t ldw, const float* bias, float* y) {
  constexpr int RMAX = FV == 1 ? 12 : 8;
  constexpr int64_t FB = FV * kVec;
  alignas(64) float out[RMAX * FB];
  const int64_t OH = g.OH, OW = g.OW, Wp = g.Wp(), OHW = OH * OW;
  for (int64_t oh = 0; oh < OH; ++oh)
    for (int64_t ow0 = 0; ow0 < OW;) {
      const float* src = xpad + oh * Wp + ow0;
      const int R = static_cast<int>(std::min<int64_t>(OW - ow0, RMAX));
      channel_tile_of<RMAX, FV>(R, src, off, g.T(), wt, ldw, out);
      float* yr = y + oh * OW + ow0;
      if (kBlockTranspose) {  // out (R, FB) -> yr[f * OHW + r], 16 channels at a time
        for (int64_t f = 0; f < FB; f += 16)
          deinterleave_block(out + f, FB, R, bias ? bias + f : nullptr, 1, yr + f * OHW, OHW);
      } else {
        for (int64_t f = 0; f < FB; ++f) {
          const float b = bias ? bias[f] : 0.0f;
          for (int r = 0; r < R; ++r) yr[f * OHW + r] = out[r * FB + f] + b;
        }
      }
      ow0 += R;
    }
}

// Whether blocks of one sample use the channel lanes: the group's channels fill whole vectors and
// the scratch products that they save, T * (Wp - OW) / kVec vector multiply-adds per output row
// and channel vector, outweigh the transpose, about OW stores per row and channel (a gain in
// LeNet-5's second layer and the VGG's 14x14 and 7x7 layers, not in its first, T = 9).
bool channel_lanes(const WideGrid& g) {
  return kVec > 1 && g.F % kVec == 0 && g.T() * (g.Wp() - g.OW) > kVec * g.OW;
}

// Dispatch on the channel vectors per tile: 2 at a time, then 1. Four at a time (4 outputs per
// tile) was slower: VGG's 7x7 layer of 64 channels took 74 us at batch 1 against 57 us with
// two (the weights stream from L2 once per tile; two vectors give 8 outputs per tile).
void channel_product(const WideGrid& g, const float* xpad, const int64_t* off, const float* wt,
                     const float* bias, float* y) {
  const int64_t F = g.F, OHW = g.OH * g.OW;
  int64_t f = 0;
  for (; F - f >= 2 * kVec; f += 2 * kVec)
    channel_rows<2>(g, xpad, off, wt + f, F, bias ? bias + f : nullptr, y + f * OHW);
  for (; F - f >= kVec; f += kVec)
    channel_rows<1>(g, xpad, off, wt + f, F, bias ? bias + f : nullptr, y + f * OHW);
}

// ---- depthwise (Cin/G == 1) ----------------------------------------------------------------
// Each output channel o reads one input channel, o / F, so the products would be single rows: a
// direct loop over the zero-padded plane instead. With stride 1 it runs on the wide grid above:
//   y_wide[i] += w[o, kh, kw] * xpad[i + kh * Wp + kw]   for i in [0, L),
// one contiguous, vectorized loop per tap.

// xpad (C, H + 2P, W + 2P) = x (C, H, W) with a border of P zeros.
void pad_planes(const float* x, int64_t C, int64_t H, int64_t W, int64_t P, float* xpad) {
  const int64_t Hp = H + 2 * P, Wp = W + 2 * P;
  for (int64_t c = 0; c < C; ++c) {
    float* dst = xpad + c * Hp * Wp;
    std::fill(dst, dst + Hp * Wp, 0.0f);
    for (int64_t h = 0; h < H; ++h)
      std::copy(x + (c * H + h) * W, x + (c * H + h + 1) * W, dst + (h + P) * Wp + P);
  }
}

struct DepthwiseDims {
  int64_t Cout, F, H, W, K, S, P, OH, OW;
  int64_t Hp() const { return H + 2 * P; }
  int64_t Wp() const { return W + 2 * P; }
  int64_t wide_len() const { return (OH - 1) * Wp() + OW; }  // L, used when S == 1
};

// One sample. x (Cin, H, W), w (Cout, 1, K, K), y (Cout, OH, OW) accumulated into (it holds the
// bias or zeros). xpad (Hp * Wp) and wide (L) are scratch.
void depthwise_forward(const DepthwiseDims& d, const float* x, const float* w, float* y,
                       float* xpad, float* wide) {
  const int64_t K = d.K, S = d.S, OH = d.OH, OW = d.OW, Wp = d.Wp(), L = d.wide_len();
  for (int64_t o = 0; o < d.Cout; ++o) {
    if (o % d.F == 0) pad_planes(x + (o / d.F) * d.H * d.W, 1, d.H, d.W, d.P, xpad);
    const float* wo = w + o * K * K;
    float* yo = y + o * OH * OW;
    if (S == 1) {
      std::fill(wide, wide + L, 0.0f);
      for (int64_t kh = 0; kh < K; ++kh)
        for (int64_t kw = 0; kw < K; ++kw) {
          const float a = wo[kh * K + kw];
          const float* src = xpad + kh * Wp + kw;
#pragma omp simd
          for (int64_t i = 0; i < L; ++i) wide[i] += a * src[i];
        }
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) yo[oh * OW + ow] += wide[oh * Wp + ow];
    } else {
      for (int64_t oh = 0; oh < OH; ++oh) {
        float* yrow = yo + oh * OW;
        for (int64_t kh = 0; kh < K; ++kh) {
          const float* xrow = xpad + (oh * S + kh) * Wp;
          for (int64_t kw = 0; kw < K; ++kw) {
            const float a = wo[kh * K + kw];
            for (int64_t ow = 0; ow < OW; ++ow) yrow[ow] += a * xrow[ow * S + kw];
          }
        }
      }
    }
  }
}

// One sample. dw (Cout, 1, K, K) += dy * x; dx (Cin, H, W) = w * dy, unless dx is null.
// xpad and dxpad (Hp * Wp) and wide (L) are scratch.
void depthwise_backward(const DepthwiseDims& d, const float* x, const float* w, const float* dy,
                        float* dw, float* dx, float* xpad, float* dxpad, float* wide) {
  const int64_t K = d.K, S = d.S, OH = d.OH, OW = d.OW, Wp = d.Wp(), L = d.wide_len();
  for (int64_t o = 0; o < d.Cout; ++o) {
    if (o % d.F == 0) {
      pad_planes(x + (o / d.F) * d.H * d.W, 1, d.H, d.W, d.P, xpad);
      if (dx) std::fill(dxpad, dxpad + d.Hp() * Wp, 0.0f);
    }
    const float* wo = w + o * K * K;
    float* dwo = dw + o * K * K;
    const float* dyo = dy + o * OH * OW;
    if (S == 1) {
      // dy on the wide grid, zeros in the scratch columns so that they add nothing.
      std::fill(wide, wide + L, 0.0f);
      for (int64_t oh = 0; oh < OH; ++oh)
        std::copy(dyo + oh * OW, dyo + (oh + 1) * OW, wide + oh * Wp);
      for (int64_t kh = 0; kh < K; ++kh)
        for (int64_t kw = 0; kw < K; ++kw) {
          const float* src = xpad + kh * Wp + kw;
          float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
          for (int64_t i = 0; i < L; ++i) acc += wide[i] * src[i];
          dwo[kh * K + kw] += acc;
          if (!dx) continue;
          const float a = wo[kh * K + kw];
          float* dst = dxpad + kh * Wp + kw;
#pragma omp simd
          for (int64_t i = 0; i < L; ++i) dst[i] += a * wide[i];
        }
    } else {
      for (int64_t oh = 0; oh < OH; ++oh) {
        const float* g = dyo + oh * OW;
        for (int64_t kh = 0; kh < K; ++kh) {
          const float* xrow = xpad + (oh * S + kh) * Wp;
          float* dxrow = dx ? dxpad + (oh * S + kh) * Wp : nullptr;
          for (int64_t kw = 0; kw < K; ++kw) {
            float acc = 0.0f;
            for (int64_t ow = 0; ow < OW; ++ow) acc += g[ow] * xrow[ow * S + kw];
            dwo[kh * K + kw] += acc;
            if (!dx) continue;
            const float a = wo[kh * K + kw];
            for (int64_t ow = 0; ow < OW; ++ow) dxrow[ow * S + kw] += a * g[ow];
          }
        }
      }
    }
    // The last output channel of this input channel: its gradient is complete.
    if (dx && o % d.F == d.F - 1) {
      float* dxc = dx + (o / d.F) * d.H * d.W;
      for (int64_t h = 0; h < d.H; ++h)
        std::copy(dxpad + (h + d.P) * Wp + d.P, dxpad + (h + d.P) * Wp + d.P + d.W, dxc + h * d.W);
    }
  }
}

// How a convolution becomes products (or not).
enum class Lowering {
  Wide,       // stride 1: register tiles on the wide grid
  Pointwise,  // 1x1 kernel, stride 1, no padding: the input block already is cols (C, H*W)
  Depthwise,  // one input channel per group: a direct loop
  Strided,    // any other: plain im2col and a matrix product
};

Lowering choose_lowering(int64_t C, int64_t G, int64_t K, int64_t S, int64_t P) {
  if (C == 1 && G > 1) return Lowering::Depthwise;
  if (K == 1 && S == 1 && P == 0) return Lowering::Pointwise;
  if (S == 1) return Lowering::Wide;
  return Lowering::Strided;
}

// Samples whose padded images and wide gradients a thread holds at once in the weight-gradient
// tiles: about this many floats (256 KB, half of a small L2 cache), at least one sample.
constexpr int64_t kGroupFloats = int64_t{1} << 16;

// The slots of a thread's scratch buffers.
enum Slot { kPadded, kWide, kCols, kPaddedGrad, kWeightGrad, kSlots };

}  // namespace

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
               int64_t padding, int64_t groups, bool bias)
    : in_(in_channels),
      out_(out_channels),
      k_(kernel_size),
      stride_(stride),
      pad_(padding),
      groups_(groups),
      has_bias_(bias) {
  EFFML_CHECK(in_channels > 0 && out_channels > 0 && kernel_size > 0 && stride > 0 &&
                  padding >= 0 && groups > 0,
              describe() << ": channels, kernel_size, stride and groups must be positive and "
                            "padding non-negative");
  EFFML_CHECK(in_channels % groups == 0 && out_channels % groups == 0,
              describe() << ": groups=" << groups << " must divide in_channels=" << in_channels
                         << " and out_channels=" << out_channels);
  weight = Parameter(Tensor::zeros({out_channels, in_channels / groups, kernel_size, kernel_size}));
  this->bias = Parameter(Tensor::zeros({bias ? out_channels : 0}));
}

Shape Conv2d::output_shape(const Shape& in) const {
  EFFML_CHECK(in.size() == 4 && in[1] == in_,
              describe() << ": expected input (N, " << in_ << ", H, W), got " << shape_str(in));
  EFFML_CHECK(in[2] + 2 * pad_ >= k_ && in[3] + 2 * pad_ >= k_,
              describe() << ": input " << shape_str(in) << " is smaller than the kernel "
                         << k_ << "x" << k_ << " even with padding " << pad_);
  const int64_t oh = (in[2] + 2 * pad_ - k_) / stride_ + 1;
  const int64_t ow = (in[3] + 2 * pad_ - k_) / stride_ + 1;
  return {in[0], out_, oh, ow};
}

int64_t Conv2d::macs(const Shape& in) const {
  const Shape out = output_shape(in);
  return out[0] * out_ * out[2] * out[3] * (in_ / groups_) * k_ * k_;
}

float* Conv2d::scratch(int thread, int slot, int64_t n) {
  // 16 floats more than asked, so that the buffer can start on a 64-byte boundary: rows whose
  // length is a whole number of vectors then load without splitting cache lines.
  std::vector<float>& v = scratch_[static_cast<std::size_t>(thread * kSlots + slot)];
  if (v.size() < static_cast<std::size_t>(n + 16)) v.resize(static_cast<std::size_t>(n + 16));
  const auto address = reinterpret_cast<std::uintptr_t>(v.data());
  return v.data() + (-address / sizeof(float)) % 16;
}

// The packed weights are kept from call to call with a copy of the weights they were packed
// from: a call whose weights are bit for bit the same (inference) reuses them after one
// comparison instead of repacking, a scalar copy with strided reads (the VGG's 60,000 conv
// weights: its batch-1 latency 122 -> 105 us, LeNet-5's 17.3 -> 16.4 us). Any change of the
// weights, in place or not, repacks; a training step pays one comparison and one copy more.
void Conv2d::refresh_packs(bool wide_lowering, bool lanes, bool wide_blocks, int nr) {
  const int64_t G = groups_, F = out_ / G, T = (in_ / G) * k_ * k_, Fp = round_up(F, nr);
  const float* pw = weight.value.data();  // G blocks of (F, T)
  const std::size_t wn = static_cast<std::size_t>(weight.value.numel());
  if (wide_lowering && (pack_source_.size() != wn ||
                        std::memcmp(pack_source_.data(), pw, wn * sizeof(float)) != 0)) {
    pack_source_.assign(pw, pw + wn);
    pack_lanes_.clear();
    pack_wide_.clear();
  }
  if (lanes && pack_lanes_.empty()) {
    pack_lanes_.resize(static_cast<std::size_t>(G * T * F));
    for (int64_t b = 0; b < G; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t f = 0; f < F; ++f)
          pack_lanes_[static_cast<std::size_t>((b * T + t) * F + f)] = pw[(b * F + f) * T + t];
  }
  if (wide_blocks && pack_wide_.empty()) {
    pack_wide_.assign(static_cast<std::size_t>(G * Fp * T), 0.0f);
    for (int64_t b = 0; b < G; ++b)  // W_b (F, T): a(f, t) = pw[(b * F + f) * T + t]
      pack_tile_rows(pw + b * F * T, F, T, T, 1, nr, pack_wide_.data() + b * Fp * T);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  Tensor y = apply(x);
  keep_input(x_, x);
  return y;
}

Tensor Conv2d::forward_owned(Tensor&& x) {
  Tensor y = apply(x);
  keep_input(x_, std::move(x));
  return y;
}

bool Conv2d::fuses_relu_pool(const Shape& in, const MaxPool2d& pool) const {
  if (!pool.fuses_relu()) return false;
  const Shape os = output_shape(in);
  const int64_t C = in_ / groups_, F = out_ / groups_;
  if (choose_lowering(C, groups_, k_, stride_, pad_) != Lowering::Wide) return false;
  const WideGrid g1{in_, C, F, in[2], in[3], k_, pad_, os[2], os[3], 1};
  return !interleave(g1) && !channel_lanes(g1) && row_pairs(g1, tile_rows(F));
}

Tensor Conv2d::forward_relu_pool(const Tensor& x, MaxPool2d& pool) {
  Tensor y = apply(x, &pool);
  keep_input(x_, x);
  return y;
}

Tensor Conv2d::forward_relu_pool(Tensor&& x, MaxPool2d& pool) {
  Tensor y = apply(x, &pool);
  keep_input(x_, std::move(x));
  return y;
}

Tensor Conv2d::apply(const Tensor& x, MaxPool2d* pool) {
  Shape os = output_shape(x.shape());
  EFFML_CHECK(!pool || fuses_relu_pool(x.shape(), *pool),
              describe() << ": forward_relu_pool with " << pool->describe() << " on input "
                         << shape_str(x.shape()) << " is not a fused case (see fuses_relu_pool)");
  const int64_t N = os[0], H = x.size(2), W = x.size(3), OH = os[2], OW = os[3];
  const int64_t K = k_, S = stride_, P = pad_, G = groups_;
  const int64_t C = in_ / G, F = out_ / G;  // channels per group, in and out
  const int64_t T = C * K * K, OHW = OH * OW, PHW = OH / 2 * (OW / 2);
  const Lowering low = choose_lowering(C, G, K, S, P);
  // The pooled values and their argmax instead of y, when fused with a ReLU and a pool.
  int32_t* pa = pool ? pool->external_forward(os) : nullptr;
  // (N, Cout, OH, OW), or pooled (N, Cout, OH / 2, OW / 2); every element is written below
  Tensor y = Tensor::empty(pool ? pool->output_shape(os) : std::move(os));
  const float* px = x.data();
  const float* pw = weight.value.data();  // (Cout, C, K, K) = G blocks of (F, T)
  const float* pb = has_bias_ ? bias.value.data() : nullptr;
  float* py = y.data();
  const bool parallel = N > 1 && N * out_ * OHW * T >= kParallelMinMacs;  // macs(x.shape())
  scratch_.resize(std::max(scratch_.size(), static_cast<std::size_t>(num_threads() * kSlots)));

  // Wide: blocks of one sample (g1) or of kVec interleaved ones (gv); the weights packed as the
  // tiles read them, G * Fp / nr blocks of (T, nr) with zeros in the rows f >= F.
  const WideGrid g1{in_, C, F, H, W, K, P, OH, OW, 1}, gv{in_, C, F, H, W, K, P, OH, OW, kVec};
  const bool use_gv = low == Lowering::Wide && interleave(g1);
  // Blocks of one sample on the channel lanes, with the weights transposed to G blocks of (T, F).
  const bool lanes = low == Lowering::Wide && channel_lanes(g1) && (!use_gv || N % kVec != 0);
  // Whether any block runs on the wide grid: a block of kVec samples, or one sample without lanes.
  const bool wide_blocks = low == Lowering::Wide && (!lanes || (use_gv && N >= kVec));
  const int nr = tile_rows(F);
  const int64_t Fp = round_up(F, nr), chunk = chunk_len(Fp);
  refresh_packs(low == Lowering::Wide, lanes, wide_blocks, nr);
  const float* wt = pack_lanes_.data();
  const float* wpack = pack_wide_.data();
  // One sample's tap offsets are kept from call to call (like the packs, for a batch-1
  // forward: LeNet-5's made 21 allocations, 7 of them here); blocks of kVec samples, which
  // amortize their own, compute theirs.
  std::vector<int64_t> offv;
  std::vector<Run> runsv;
  const Run run1{0, 0, g1.len()};  // one sample: one run over the grid
  if (low == Lowering::Wide) {
    if (taps_hw_ != std::make_pair(H, W)) {
      taps1_ = g1.tap_offsets(T);
      taps_hw_ = {H, W};
    }
    if (use_gv) {
      offv = gv.tap_offsets(T);
      runsv = gv.runs();
    }
  }
  const int64_t* off1 = taps1_.data();
  const DepthwiseDims dd{out_, F, H, W, K, S, P, OH, OW};

  parallel_chunks(N, parallel, [&](int tid, int64_t begin, int64_t end) {
    if (low == Lowering::Wide) {
      for (int64_t n = begin; n < end;) {
        const bool v = use_gv && end - n >= kVec;  // a block of kVec samples, or of one
        const WideGrid& g = v ? gv : g1;
        const int64_t* off = v ? offv.data() : off1;
        float* xb = scratch(tid, kPadded, g.xlen());
        float* out = scratch(tid, kWide, Fp * chunk);  // (Fp, chunk): one chunk of y_b
        const float* xn = px + n * in_ * H * W;
        if (!v && lanes) {
          // Without padding a sample is its own block, and the lanes read only inside it (the
          // copy was 0.3 of LeNet-5's 13.3 us at batch 1).
          if (P != 0) pack_input<1>(g, xn, xb);
          const float* src = P != 0 ? xb : xn;
          for (int64_t b = 0; b < G; ++b)
            channel_product(g, src + b * C * g.plane(), off, wt + b * T * F,
                            pb ? pb + b * F : nullptr, py + n * out_ * OHW + b * F * OHW);
          n += 1;
          continue;
        }
        if (v)
          pack_input<kVec>(g, xn, xb);
        else
          pack_input<1>(g, xn, xb);
        if (!v && row_pairs(g, nr)) {
          for (int64_t b = 0; b < G; ++b) {
            const int64_t c0 = n * out_ + b * F;  // the group's first channel of sample n
            const RowOut to = pool ? RowOut{nullptr, py + c0 * PHW, pa ? pa + c0 * PHW : nullptr}
                                   : RowOut{py + c0 * OHW, nullptr, nullptr};
            row_pair_product(nr, g, xb + b * C * g.plane(), off, wpack + b * Fp * T, Fp,
                             pb ? pb + b * F : nullptr, to);
          }
          n += 1;
          continue;
        }
        const Run* runs = v ? runsv.data() : &run1;
        const std::size_t num_runs = v ? runsv.size() : 1;
        for (int64_t b = 0; b < G; ++b)
          for (std::size_t r = 0; r < num_runs; ++r)
            for (int64_t i = 0, count = chunks_of(runs[r].n, chunk); i < count; ++i) {
              const Run& run = runs[r];
              const int64_t p0 = run.b + chunk_start(run.n, count, i);
              const int64_t cols = run.b + chunk_start(run.n, count, i + 1) - p0;
              // y_b (Fp, cols) = W_g (Fp, T) x cols(x_b) (T, cols), the columns read in place
              wide_product(nr, xb + b * C * g.plane() + p0, off, T, wpack + b * Fp * T,
                           Fp, TileOut{out, chunk, nullptr, 0}, cols);
              const float* bias_g = pb ? pb + b * F : nullptr;
              float* yg = py + n * out_ * OHW + b * F * OHW;
              if (v)
                unpack_output<kVec>(g, out, chunk, p0, p0 + cols, bias_g, out_ * OHW, yg);
              else
                unpack_output<1>(g, out, chunk, p0, p0 + cols, bias_g, out_ * OHW, yg);
            }
        n += g.NB;
      }
    } else {
      for (int64_t n = begin; n < end; ++n) {
        const float* xn = px + n * in_ * H * W;  // (Cin, H, W)
        float* yn = py + n * out_ * OHW;         // (Cout, OH, OW)
        if (low == Lowering::Depthwise) {
          for (int64_t o = 0; o < out_; ++o)
            std::fill(yn + o * OHW, yn + (o + 1) * OHW, pb ? pb[o] : 0.0f);
          depthwise_forward(dd, xn, pw, yn, scratch(tid, kPadded, (H + 2 * P) * (W + 2 * P)),
                            scratch(tid, kWide, (OH - 1) * (W + 2 * P) + OW));
          continue;
        }
        for (int64_t g = 0; g < G; ++g) {
          const float* xg = xn + g * C * H * W;  // (C, H, W)
          const float* wg = pw + g * F * T;      // (F, T)
          float* yg = yn + g * F * OHW;          // (F, OH, OW)
          const float* b = xg;  // Pointwise: the input block is cols (C, H*W) already.
          if (low == Lowering::Strided) {
            float* cols = scratch(tid, kCols, T * OHW);
            im2col(xg, C, H, W, K, S, P, OH, OW, cols);
            b = cols;
          }
          // y_ng (F, OHW) = W_g (F, T) x cols (T, OHW)
          gemm(false, false, F, OHW, T, 1.0f, wg, T, b, OHW, 0.0f, yg, OHW);
        }
        if (pb)
          for (int64_t o = 0; o < out_; ++o) {
            float* yo = yn + o * OHW;
            for (int64_t p = 0; p < OHW; ++p) yo[p] += pb[o];
          }
      }
    }
  });
  return y;
}

Tensor Conv2d::backward(const Tensor& dy) {
  EFFML_CHECK(x_.dim() == 4, describe() << ": backward called without a training-mode forward");
  const Shape os = output_shape(x_.shape());
  check_shape(dy, os, describe() + " backward: dy");
  const int64_t N = os[0], H = x_.size(2), W = x_.size(3), OH = os[2], OW = os[3];
  const int64_t K = k_, S = stride_, P = pad_, G = groups_;
  const int64_t C = in_ / G, F = out_ / G;
  const int64_t T = C * K * K, OHW = OH * OW;
  const Lowering low = choose_lowering(C, G, K, S, P);
  const bool want_dx = needs_input_grad;
  const float* px = x_.data();
  const float* pw = weight.value.data();
  const float* pdy = dy.data();
  // Only the strided lowering adds into dx; the others write every element.
  Tensor dx = !want_dx                     ? Tensor(Shape{0})
              : low == Lowering::Strided ? Tensor(x_.shape())
                                         : Tensor::empty(x_.shape());
  float* pdx = want_dx ? dx.data() : nullptr;
  scratch_.resize(std::max(scratch_.size(), static_cast<std::size_t>(num_threads() * kSlots)));

  // db_o += sum over n, oh, ow of dy: one vectorized pass over dy, too cheap to split.
  if (has_bias_) {
    float* db = bias.grad.data();
    for (int64_t o = 0; o < out_; ++o) {
      float acc = 0.0f;
      for (int64_t n = 0; n < N; ++n) {
        const float* d = pdy + (n * out_ + o) * OHW;
#pragma omp simd reduction(+ : acc)
        for (int64_t p = 0; p < OHW; ++p) acc += d[p];
      }
      db[o] += acc;
    }
  }

  // Wide: the weight-gradient tiles cover Fp rows and Q taps (both padded to whole tiles); dx
  // comes from the forward tiles with the roles of filters and taps swapped (W packed as
  // G * Tp / nt blocks of (F, nt), reading dy_b's rows), each row added to its tap's inputs.
  const WideGrid g1{in_, C, F, H, W, K, P, OH, OW, 1}, gv{in_, C, F, H, W, K, P, OH, OW, kVec};
  // A layer without an input gradient (a model's first) interleaves at any T: its weight
  // gradient then reads aligned vectors and no scratch columns. LeNet-5's first layer (T = 25)
  // at batch 64: 270 -> 220 us per backward, the same run; whole epochs 1.96 -> 1.87 s (medians
  // of five alternating half-epoch runs each, same run).
  const bool use_gv = low == Lowering::Wide && (interleave(g1) || (kVec > 1 && !want_dx));
  const int nr = tile_rows(F), nt = tile_rows(T);
  const int64_t Fp = round_up(F, nr), Q = round_up(T, dw_tile_taps(nr)), Tp = round_up(T, nt);
  std::vector<float> wpack;
  std::vector<int64_t> off1, offv, off_f1, off_fv;
  if (low == Lowering::Wide) {
    off1 = g1.tap_offsets(Q);
    if (use_gv) offv = gv.tap_offsets(Q);
    if (want_dx) {
      wpack.assign(static_cast<std::size_t>(G * Tp * F), 0.0f);
      for (int64_t b = 0; b < G; ++b)  // W_b^T (T, F): a(t, f) = pw[(b * F + f) * T + t]
        pack_tile_rows(pw + b * F * T, T, F, 1, T, nt, wpack.data() + b * Tp * F);
      for (int64_t f = 0; f < F; ++f) {
        off_f1.push_back(f * g1.len());  // row f of dy_b
        off_fv.push_back(f * gv.len());
      }
    }
  }
  // Each thread sums dW over its samples into its own buffer, (G, Fr, Tr); the buffers are added
  // up in thread order at the end, so that results are deterministic for a thread count.
  const int64_t Fr = low == Lowering::Wide ? Fp : F, Tr = low == Lowering::Wide ? Q : T;
  const DepthwiseDims dd{out_, F, H, W, K, S, P, OH, OW};
  const bool parallel = N > 1 && macs(x_.shape()) >= kParallelMinMacs;
  const int team = parallel_chunks(N, parallel, [&](int tid, int64_t begin, int64_t end) {
    float* dw = scratch(tid, kWeightGrad, G * Fr * Tr);
    std::fill(dw, dw + G * Fr * Tr, 0.0f);
    if (low == Lowering::Wide) {
      std::vector<Run> runs;
      for (int64_t n = begin; n < end;) {
        const bool v = use_gv && end - n >= kVec;  // blocks of kVec samples, or of one
        const WideGrid& g = v ? gv : g1;
        const int64_t xl = g.xlen(), yl = G * Fp * g.len(), NB = g.NB;
        // As many blocks as fit about kGroupFloats, so that the tiles sweep them from cache.
        const int64_t blocks =
            std::max<int64_t>(1, std::min(kGroupFloats / (xl + yl), (end - n) / NB));
        float* xb = scratch(tid, kPadded, blocks * xl);  // (blocks, xl)
        float* dyb = scratch(tid, kWide, blocks * yl);   // (blocks, G, Fp, len)
        runs.clear();
        for (int64_t s = 0; s < blocks; ++s) {
          const float* xs = px + (n + s * NB) * in_ * H * W;
          const float* dys = pdy + (n + s * NB) * out_ * OHW;
          if (v) {
            pack_input<kVec>(g, xs, xb + s * xl);
            pack_grad<kVec>(g, G, Fp, dys, dyb + s * yl);
          } else {
            pack_input<1>(g, xs, xb + s * xl);
            pack_grad<1>(g, G, Fp, dys, dyb + s * yl);
          }
          for (const Run& r : g.runs()) runs.push_back(Run{s * yl + r.a, s * xl + r.b, r.n});
        }
        // dW_g (Fp, Q) += dy_b (Fp, positions) x cols(x_b)^T (positions, Q), over all the runs
        const int64_t* off = v ? offv.data() : off1.data();
        for (int64_t b = 0; b < G; ++b)
          wide_dw(nr, dyb + b * Fp * g.len(), g.len(), xb + b * C * g.plane(), off, runs, Fp, Q,
                  dw + b * Fp * Q);
        if (want_dx) {
          float* dxb = scratch(tid, kPaddedGrad, xl);
          const int64_t* off_f = v ? off_fv.data() : off_f1.data();
          for (int64_t s = 0; s < blocks; ++s) {
            std::fill(dxb, dxb + xl, 0.0f);  // the tiles add into it
            // dcols (Tp, positions) = W_g^T (Tp, F) x dy_b (F, positions), each tile's row t
            // added at once to the inputs of tap t, dx_b[off[t] + p] (col2im in the tiles:
            // LeNet-5's second layer wrote and read back 150 x 160 floats per output row).
            for (int64_t b = 0; b < G; ++b)
              for (const Run& run : g.runs())
                wide_product(nt, dyb + s * yl + b * Fp * g.len() + run.a, off_f, F,
                             wpack.data() + b * Tp * F, Tp,
                             TileOut{dxb + b * C * g.plane() + run.a, 0, off, T}, run.n);
            float* dxs = pdx + (n + s * NB) * in_ * H * W;
            if (v)
              unpack_grad_input<kVec>(g, dxb, dxs);
            else
              unpack_grad_input<1>(g, dxb, dxs);
          }
        }
        n += blocks * NB;
      }
    } else {
      for (int64_t n = begin; n < end; ++n) {
        const float* xn = px + n * in_ * H * W;
        const float* dyn = pdy + n * out_ * OHW;
        float* dxn = want_dx ? pdx + n * in_ * H * W : nullptr;
        if (low == Lowering::Depthwise) {
          const int64_t plane = (H + 2 * P) * (W + 2 * P);
          depthwise_backward(dd, xn, pw, dyn, dw, dxn, scratch(tid, kPadded, plane),
                             want_dx ? scratch(tid, kPaddedGrad, plane) : nullptr,
                             scratch(tid, kWide, (OH - 1) * (W + 2 * P) + OW));
          continue;
        }
        for (int64_t g = 0; g < G; ++g) {
          const float* xg = xn + g * C * H * W;  // (C, H, W)
          const float* wg = pw + g * F * T;      // (F, T)
          const float* dyg = dyn + g * F * OHW;  // (F, OH, OW)
          float* dwg = dw + g * F * T;           // (F, T)
          float* dxg = want_dx ? dxn + g * C * H * W : nullptr;
          const float* b = xg;  // Pointwise: the input block is cols (C, H*W) already.
          if (low == Lowering::Strided) {
            float* cols = scratch(tid, kCols, T * OHW);
            im2col(xg, C, H, W, K, S, P, OH, OW, cols);
            b = cols;
          }
          // dW_g (F, T) += dy_ng (F, OHW) x cols^T (OHW, T)
          gemm(false, true, F, T, OHW, 1.0f, dyg, OHW, b, OHW, 1.0f, dwg, T);
          if (!want_dx) continue;
          if (low == Lowering::Pointwise) {
            // dx_ng (C, HW) = W_g^T (C, F) x dy_ng (F, HW)
            gemm(true, false, C, OHW, F, 1.0f, wg, T, dyg, OHW, 0.0f, dxg, OHW);
          } else {
            // dcols (T, OHW) = W_g^T (T, F) x dy_ng (F, OHW), then back to input positions.
            float* dcols = scratch(tid, kPaddedGrad, T * OHW);
            gemm(true, false, T, OHW, F, 1.0f, wg, T, dyg, OHW, 0.0f, dcols, OHW);
            col2im_add(dcols, C, H, W, K, S, P, OH, OW, dxg);
          }
        }
      }
    }
  });
  float* gw = weight.grad.data();
  for (int t = 0; t < team; ++t) {
    const float* dw = scratch(t, kWeightGrad, G * Fr * Tr);
    for (int64_t b = 0; b < G; ++b)
      for (int64_t f = 0; f < F; ++f)
        for (int64_t k = 0; k < T; ++k) gw[(b * F + f) * T + k] += dw[(b * Fr + f) * Tr + k];
  }
  return dx;
}

std::string Conv2d::describe() const {
  std::string s = "Conv2d(" + std::to_string(in_) + ", " + std::to_string(out_) +
                  ", kernel_size=" + std::to_string(k_) + ", stride=" + std::to_string(stride_);
  if (pad_ != 0) s += ", padding=" + std::to_string(pad_);
  if (groups_ != 1) s += ", groups=" + std::to_string(groups_);
  if (!has_bias_) s += ", bias=false";
  return s + ")";
}

std::vector<std::pair<std::string, Parameter*>> Conv2d::local_parameters() {
  if (has_bias_) return {{"weight", &weight}, {"bias", &bias}};
  return {{"weight", &weight}};
}

}  // namespace effml
