/// \file gemm.h
/// \brief Dense single-precision matrix product on raw row-major buffers.
///
/// The one place layers multiply matrices; Linear and Conv2d (after im2col) call it. With
/// AVX-512, a product whose B holds at most 2^18 floats (1 MB, this machine's L2 per core) runs
/// on register tiles that keep 8 x 48 of C in registers and read A and B in place (a transposed
/// B is packed first); those are the fully connected layers' products in training, where Eigen
/// reached 40-43 of the core's 58 GMAC/s and the tiles 49-55. Larger products, and builds
/// without AVX-512, go to Eigen, whose blocking suits them.
#pragma once

#include <cstdint>

namespace effml {

/// C = alpha * op(A) * op(B) + beta * C, all row-major.
///
/// op(A) is (M, K): A itself is (M, K) with row stride lda, or (K, M) when trans_a.
/// op(B) is (K, N): B itself is (K, N) with row stride ldb, or (N, K) when trans_b.
/// C is (M, N) with row stride ldc. beta == 0 overwrites C (its old values may be garbage).
/// Splits the rows of C across the core's threads when the product is large and the caller is
/// not already inside a parallel region. On the register tiles each element of C sums its K
/// products in order, whatever the thread count.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc);

/// The naive triple loop, kept as the algorithmic reference that tests compare gemm against.
void gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc);

}  // namespace effml
