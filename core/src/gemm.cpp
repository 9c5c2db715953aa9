#include "effml/gemm.h"

#include <Eigen/Core>
#include <algorithm>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "effml/parallel.h"

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
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
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
  int threads = 1;
#ifdef _OPENMP
  // Below about a million multiply-adds a fork costs more than it saves.
  if (!omp_in_parallel() && M * N * K >= (int64_t{1} << 20)) threads = num_threads();
#endif
  // Row blocks are multiples of 8 so that Eigen's kernels see the same panel layout in each.
  const int64_t chunks = std::min<int64_t>(threads, (M + 7) / 8);
  if (chunks <= 1) {
    gemm_rows(trans_a, trans_b, 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int64_t per = ((M + chunks - 1) / chunks + 7) / 8 * 8;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t t = 0; t < chunks; ++t) {
    const int64_t r0 = t * per, r1 = std::min(M, r0 + per);
    if (r0 < r1) gemm_rows(trans_a, trans_b, r0, r1, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
