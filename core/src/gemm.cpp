#include "effml/gemm.h"

#include <Eigen/Core>
#include <algorithm>

#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "effml/parallel.h"
#include "avx512_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace effml {

namespace {
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using Stride = Eigen::OuterStride<>;
// A row-major (K, M) buffer read as column-major (M, K) is its transpose, with no copy.
using ConstRowMap = Eigen::Map<const RowMat, Eigen::Unaligned, Stride>;
using ConstColMap = Eigen::Map<const ColMat, Eigen::Unaligned, Stride>;
using RowMap = Eigen::Map<RowMat, Eigen::Unaligned, Stride>;

// Rows [r0, r1) of C.
void gemm_rows(bool ta, bool tb, int64_t r0, int64_t r1, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc) {
  const int64_t m = r1 - r0;
  RowMap c(C + r0 * ldc, m, N, Stride(ldc));
  auto run = [&](const auto& a, const auto& b) {
    if (beta == 0.0f) {
      c.noalias() = alpha * (a * b);
    } else {
      if (beta != 1.0f) c *= beta;
      c.noalias() += alpha * (a * b);
    }
  };
  if (!ta && !tb) run(ConstRowMap(A + r0 * lda, m, K, Stride(lda)), ConstRowMap(B, K, N, Stride(ldb)));
  if (!ta && tb) run(ConstRowMap(A + r0 * lda, m, K, Stride(lda)), ConstColMap(B, K, N, Stride(ldb)));
  if (ta && !tb) run(ConstColMap(A + r0, m, K, Stride(lda)), ConstRowMap(B, K, N, Stride(ldb)));
  if (ta && tb) run(ConstColMap(A + r0, m, K, Stride(lda)), ConstColMap(B, K, N, Stride(ldb)));
}

#if defined(__AVX512F__)
// C (1, N) = alpha * a (1, K) B^T + beta * C with B (N, K), row stride ldb: one dot product per
// row of B, four rows at a time so that each vector of a feeds four multiply-adds, the tail of K
// by masked loads. This is Linear's forward at batch 1; Eigen's matrix-vector product spends more
// on its set-up than on these sums: LeNet-5's second fully connected layer (84 x 120) took
// 0.66 us there, 0.42 us here, and its first (120 x 400), bound by reading the weights from
// cache, the same 1.9 us either way.
template <int R>
void dot_rows(const float* a, const float* B, int64_t ldb, int64_t K, float alpha, float beta,
              float* c) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 x = _mm512_loadu_ps(a + k);
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(B + r * ldb + k), x, acc[r]);
  }
  if (k < K) {
    const __mmask16 m = first_lanes(K - k);
    const __m512 x = _mm512_maskz_loadu_ps(m, a + k);
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, B + r * ldb + k), x, acc[r]);
  }
  for (int r = 0; r < R; ++r) {
    const float dot = alpha * _mm512_reduce_add_ps(acc[r]);
    c[r] = beta == 0.0f ? dot : dot + beta * c[r];  // beta == 0 ignores C, even a NaN in it
  }
}

void gemv_rows(const float* a, const float* B, int64_t ldb, int64_t N, int64_t K, float alpha,
               float beta, float* c) {
  int64_t j = 0;
  for (; j + 4 <= N; j += 4) dot_rows<4>(a, B + j * ldb, ldb, K, alpha, beta, c + j);
  for (; j < N; ++j) dot_rows<1>(a, B + j * ldb, ldb, K, alpha, beta, c + j);
}

// ---- register tiles (AVX-512) ----------------------------------------------------------------
// For the products of the fully connected layers in training, Eigen's general kernel reached
// 40-43 GMAC/s on an idle core whose peak is 58; its packing and blocking are built for larger
// matrices. These tiles read both operands where they are and keep a tile of C in registers for
// the whole sum over k, as Conv2d's tiles do. Measured on this machine (AMD EPYC with AVX-512,
// 1 thread, medians of 400 calls, both in the same run), LeNet-5's products at batch 64:
//   fc1 (120 x 400): forward 66 against 77 us, weight gradient 59 against 76, input gradient
//   56 against 77; fc2 (84 x 120): 14.5, 14.0 and 13.2 against 18.8, 19.5 and 20.0 us;
// LeNet-300-100's first layer (300 x 784): forward 314 against 386 us, weight gradient 306
// against 415. They read all of B once per 8 rows of C, so past about a megabyte of B (this
// core's L2) Eigen's blocking wins: 1000 x 2000 times 2000 x 3000 ran 3.6 times slower here.

// B (K, N) read in rows is what the tiles need; products with a transposed B read it packed.
constexpr int64_t kTileMaxB = int64_t{1} << 18;  // floats of B, 1 MB

// C[r][16 m + l] = alpha * sum_k A(r, k) B[k][16 m + l] + beta * C[...] for the NR rows r and
// MV vectors m of the tile, the last vector's lanes limited by `last`. A(r, k) = a[r * sr +
// k * sk] (either layout of A); B has row stride ldb. beta == 0 ignores C (NaN included).
template <int NR, int MV>
void gemm_tile(const float* a, int64_t sr, int64_t sk, const float* b, int64_t ldb, int64_t K,
               float alpha, float beta, float* c, int64_t ldc, __mmask16 last) {
  __m512 acc[NR][MV];
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 16
    for (int m = 0; m < MV; ++m) acc[r][m] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* bk = b + k * ldb;
    __m512 bv[MV];  // loaded once, used NR times
#pragma GCC unroll 16
    for (int m = 0; m < MV; ++m)
      bv[m] = m + 1 < MV ? _mm512_loadu_ps(bk + 16 * m) : _mm512_maskz_loadu_ps(last, bk + 16 * m);
    const float* ak = a + k * sk;
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const __m512 av = _mm512_set1_ps(ak[r * sr]);  // broadcast, used MV times
#pragma GCC unroll 16
      for (int m = 0; m < MV; ++m) acc[r][m] = _mm512_fmadd_ps(av, bv[m], acc[r][m]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 16
    for (int m = 0; m < MV; ++m) {
      float* p = c + r * ldc + 16 * m;
      const __mmask16 mask = m + 1 < MV ? __mmask16{0xFFFF} : last;
      __m512 v = _mm512_mul_ps(va, acc[r][m]);
      if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, p), v);
      _mm512_mask_storeu_ps(p, mask, v);
    }
}

// NR rows of C, all N columns: three vectors per tile, then two and two when four are left (a
// lone vector keeps only NR accumulators busy), or the two or one left.
template <int NR>
void gemm_tile_row(const float* a, int64_t sr, int64_t sk, const float* b, int64_t ldb,
                   int64_t N, int64_t K, float alpha, float beta, float* c, int64_t ldc) {
  const int64_t nv = (N + 15) / 16;
  const __mmask16 last = first_lanes(N - 16 * (nv - 1));
  int64_t v = 0;
  for (; nv - v > 4 || nv - v == 3; v += 3)
    gemm_tile<NR, 3>(a, sr, sk, b + 16 * v, ldb, K, alpha, beta, c + 16 * v, ldc,
                     v + 3 == nv ? last : __mmask16{0xFFFF});
  for (; nv - v >= 2; v += 2)
    gemm_tile<NR, 2>(a, sr, sk, b + 16 * v, ldb, K, alpha, beta, c + 16 * v, ldc,
                     v + 2 == nv ? last : __mmask16{0xFFFF});
  if (v < nv) gemm_tile<NR, 1>(a, sr, sk, b + 16 * v, ldb, K, alpha, beta, c + 16 * v, ldc, last);
}

// Rows [r0, r1) of C = alpha * op(A) B + beta * C, B (K, N) in rows.
void gemm_tile_rows(bool ta, int64_t r0, int64_t r1, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                    float* C, int64_t ldc) {
  const int64_t sr = ta ? 1 : lda, sk = ta ? lda : 1;  // A(r, k) = A[r * sr + k * sk]
  int64_t r = r0;
  for (; r1 - r >= 8; r += 8)
    gemm_tile_row<8>(A + r * sr, sr, sk, B, ldb, N, K, alpha, beta, C + r * ldc, ldc);
  if (r1 - r >= 4) {
    gemm_tile_row<4>(A + r * sr, sr, sk, B, ldb, N, K, alpha, beta, C + r * ldc, ldc);
    r += 4;
  }
  for (; r < r1; ++r)
    gemm_tile_row<1>(A + r * sr, sr, sk, B, ldb, N, K, alpha, beta, C + r * ldc, ldc);
}

// GCC 12's false warnings from the shuffles of transpose16, inlined here (see avx512_kernels.h).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// d (K, ldd) = B^T for B (N, K) with row stride ldb, 16 x 16 blocks at a time; columns [N, ldd)
// of d up to the next multiple of 16 are written with zeros.
void pack_transposed(const float* B, int64_t ldb, int64_t N, int64_t K, float* d, int64_t ldd) {
  for (int64_t j0 = 0; j0 < N; j0 += 16) {
    const int64_t nj = std::min<int64_t>(16, N - j0);
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
      const int64_t nk = std::min<int64_t>(16, K - k0);
      __m512 r[16];
      for (int64_t i = 0; i < 16; ++i)
        r[i] = i < nj ? _mm512_maskz_loadu_ps(first_lanes(nk), B + (j0 + i) * ldb + k0)
                      : _mm512_setzero_ps();
      transpose16(r);
      for (int64_t i = 0; i < nk; ++i) _mm512_storeu_ps(d + (k0 + i) * ldd + j0, r[i]);
    }
  }
}
#pragma GCC diagnostic pop
#endif
}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc) {
  if (M <= 0 || N <= 0) return;
#if defined(__AVX512F__)
  if (M == 1 && !trans_a && trans_b && K > 0) {
    gemv_rows(A, B, ldb, N, K, alpha, beta, C);
    return;
  }
#endif
  // Rows [r0, r1) of C, by the register tiles or by Eigen.
  auto rows = [&](int64_t r0, int64_t r1) {
    gemm_rows(trans_a, trans_b, r0, r1, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  };
#if defined(__AVX512F__)
  const bool tiles = K * N <= kTileMaxB;
  // One packed copy of a transposed B per thread that calls gemm (Conv2d calls it from inside
  // its own parallel loops); the rows of C share it.
  thread_local std::vector<float> packed;
  const float* b = B;
  int64_t ldb_tiles = ldb;
  if (tiles && trans_b) {
    ldb_tiles = (N + 15) / 16 * 16;
    packed.resize(static_cast<std::size_t>(K * ldb_tiles));
    pack_transposed(B, ldb, N, K, packed.data(), ldb_tiles);
    b = packed.data();
  }
  auto tile_rows = [&](int64_t r0, int64_t r1) {
    gemm_tile_rows(trans_a, r0, r1, N, K, alpha, A, lda, b, ldb_tiles, beta, C, ldc);
  };
  auto run_rows = [&](int64_t r0, int64_t r1) { tiles ? tile_rows(r0, r1) : rows(r0, r1); };
#else
  auto run_rows = rows;
#endif
  int threads = 1;
#ifdef _OPENMP
  // Below about a million multiply-adds a fork costs more than it saves.
  if (!omp_in_parallel() && M * N * K >= (int64_t{1} << 20)) threads = num_threads();
#endif
  // Row blocks are multiples of 8: whole tiles, and the same panel layout in each for Eigen.
  const int64_t chunks = std::min<int64_t>(threads, (M + 7) / 8);
  if (chunks <= 1) {
    run_rows(0, M);
    return;
  }
  const int64_t per = ((M + chunks - 1) / chunks + 7) / 8 * 8;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t t = 0; t < chunks; ++t) {
    const int64_t r0 = t * per, r1 = std::min(M, r0 + per);
    if (r0 < r1) run_rows(r0, r1);
  }
}

void gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += static_cast<double>(a) * b;
      }
      float& c = C[i * ldc + j];
      c = static_cast<float>(alpha * acc + (beta == 0.0f ? 0.0 : beta * c));
    }
  }
}

}  // namespace effml
