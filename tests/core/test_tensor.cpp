// Tensor: construction, dtypes, shape errors, reductions, kthvalue, matmul against gemm_naive.
#include <catch2/catch.hpp>

#include <cmath>

#include "effml/gemm.h"
#include "effml/parallel.h"
#include "effml/rng.h"
#include "effml/tensor.h"

using namespace effml;

TEST_CASE("tensor: construction, shape and dtype", "[tensor]") {
  Tensor t({2, 3});
  CHECK(t.numel() == 6);
  CHECK(t.dim() == 2);
  CHECK(t.size(-1) == 3);
  CHECK(t.shape_str() == "(2, 3)");
  CHECK(t.sum() == 0.0f);
  Tensor q({4}, DType::Int8);
  CHECK(q.nbytes() == 4);
  CHECK_THROWS_WITH(q.data(), Catch::Contains("int8") && Catch::Contains("(4,)"));
  CHECK_THROWS_WITH(Tensor({2, 2}, std::vector<float>{1, 2, 3}),
                    Catch::Contains("(2, 2)") && Catch::Contains("got 3"));
  // Sizes whose product would overflow int64_t (2^70 here, which wraps to 0) are refused by
  // name, not turned into a small or empty tensor; so are negative sizes.
  const int64_t big = int64_t{1} << 35;
  CHECK_THROWS_WITH(Tensor({big, big}), Catch::Contains("(34359738368, 34359738368)") &&
                                            Catch::Contains("too large"));
  CHECK_THROWS_WITH(Tensor({big, big, 0}), Catch::Contains("too large"));
  CHECK_THROWS_WITH(Tensor({2, -1}), Catch::Contains("negative") && Catch::Contains("(2, -1)"));
  CHECK(Tensor({big, 0}).numel() == 0);
}

TEST_CASE("tensor: copies are deep, moves are cheap", "[tensor]") {
  Tensor a({3}, std::vector<float>{1, 2, 3});
  Tensor b = a;
  b[0] = 10;
  CHECK(a[0] == 1);
  Tensor c = std::move(b);
  CHECK(c[0] == 10);
}

TEST_CASE("tensor: reshape, narrow, index_select, t", "[tensor]") {
  Tensor a({2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5});
  CHECK(a.reshape({3, -1}).shape() == Shape{3, 2});
  CHECK_THROWS_WITH(a.reshape({4, 2}), Catch::Contains("(2, 3)") && Catch::Contains("(4, 2)"));
  CHECK(a.narrow(1, 1).to_vector() == std::vector<float>{3, 4, 5});
  CHECK(a.index_select(1, {2, 0}).to_vector() == std::vector<float>{2, 0, 5, 3});
  CHECK(a.t().to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
  CHECK(a.at({1, 2}) == 5);
  CHECK_THROWS_WITH(a.at({2, 0}), Catch::Contains("out of range"));
}

TEST_CASE("tensor: elementwise and reductions", "[tensor]") {
  Tensor a({4}, std::vector<float>{-2, -1, 0.5f, 3});
  CHECK((a.abs()).to_vector() == std::vector<float>{2, 1, 0.5f, 3});
  CHECK(a.relu().to_vector() == std::vector<float>{0, 0, 0.5f, 3});
  CHECK(a.sum() == Approx(0.5f));
  CHECK(a.max() == 3);
  CHECK(a.min() == -2);
  CHECK(a.norm() == Approx(std::sqrt(4 + 1 + 0.25 + 9)));
  CHECK(a.count_nonzero() == 4);
  CHECK((a + a).to_vector() == std::vector<float>{-4, -2, 1, 6});
  CHECK_THROWS_WITH(a + Tensor({3}), Catch::Contains("(4,)") && Catch::Contains("(3,)"));
  Tensor r({3}, std::vector<float>{0.5f, 1.5f, -2.5f});
  CHECK(r.round().to_vector() == std::vector<float>{0, 2, -2});  // ties to even, as torch
}

TEST_CASE("tensor: kthvalue matches a full sort", "[tensor]") {
  Rng rng(7);
  for (int64_t n : {1, 3, 7, 17, 1000}) {
    Tensor t = Tensor::randn({n}, rng);
    Tensor s = t.sort();
    for (int64_t k : {int64_t{1}, (n + 1) / 2, n}) CHECK(t.kthvalue(k) == s[k - 1]);
  }
  CHECK_THROWS_WITH(Tensor({3}).kthvalue(4), Catch::Contains("[1, 3]"));
}

TEST_CASE("tensor: int conversion rounds to nearest even and saturates", "[tensor]") {
  Tensor a({5}, std::vector<float>{2.5f, -2.5f, 300.f, -300.f, 1.4f});
  Tensor q = a.to(DType::Int8);
  CHECK(q.data_i8()[0] == 2);
  CHECK(q.data_i8()[1] == -2);
  CHECK(q.data_i8()[2] == 127);
  CHECK(q.data_i8()[3] == -128);
  CHECK(q.data_i8()[4] == 1);
}

TEST_CASE("gemm: every transpose combination matches the naive loop", "[tensor][gemm]") {
  Rng rng(3);
  for (int64_t m : {1, 3, 17, 130}) {
    for (int64_t n : {1, 7, 33}) {
      for (int64_t k : {1, 5, 64, 300}) {
        for (int ta = 0; ta < 2; ++ta) {
          for (int tb = 0; tb < 2; ++tb) {
            Tensor a = Tensor::randn(ta ? Shape{k, m} : Shape{m, k}, rng);
            Tensor b = Tensor::randn(tb ? Shape{n, k} : Shape{k, n}, rng);
            Tensor c1 = Tensor::randn({m, n}, rng), c2 = c1;
            const int64_t lda = ta ? m : k, ldb = tb ? k : n;
            gemm(ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, c1.data(), n);
            gemm_naive(ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, c2.data(), n);
            INFO("m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb);
            CHECK(c1.allclose(c2, 1e-4f, 1e-4f));
          }
        }
      }
    }
  }
  Tensor a({2, 3}), b({4, 5});
  CHECK_THROWS_WITH(a.matmul(b), Catch::Contains("(2, 3)") && Catch::Contains("(4, 5)"));
}

namespace {
// gemm against gemm_naive with row strides wider than the matrices: C's columns past N must keep
// their values, and beta == 0 must ignore a C full of NaNs.
void check_gemm_strided(Rng& rng, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float beta) {
  const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 7;
  Tensor a = Tensor::randn(ta ? Shape{k, lda} : Shape{m, lda}, rng);
  Tensor b = Tensor::randn(tb ? Shape{n, ldb} : Shape{k, ldb}, rng);
  Tensor c1 = Tensor::randn({m, ldc}, rng);
  if (beta == 0.0f)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c1.data()[i * ldc + j] = std::nanf("");
  Tensor c2 = c1;
  gemm(ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, beta, c1.data(), ldc);
  gemm_naive(ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, beta, c2.data(), ldc);
  INFO("m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb << " beta=" << beta);
  CHECK(c1.allclose(c2, 1e-4f, 1e-4f));  // the padding columns included, compared exactly
}
}  // namespace

TEST_CASE("gemm: the register tiles' row and column tails, strides, K = 0 and beta",
          "[tensor][gemm]") {
  // Products whose B holds at most 2^18 floats run on AVX-512 register tiles of 8, 4 and 1 rows
  // and 1 to 3 vectors of 16 columns, the last vector masked: rows below, at and past 4 and 8,
  // columns below, at and past each multiple of 16 up to 3 vectors and beyond, K = 0 (C =
  // beta * C), every transpose combination.
  Rng rng(5);
  for (int64_t m : {1, 3, 4, 5, 8, 12, 15, 23}) {
    for (int64_t n : {1, 15, 16, 17, 33, 48, 49, 65, 120}) {
      for (int64_t k : {0, 1, 17}) {
        for (int t = 0; t < 4; ++t)
          check_gemm_strided(rng, t & 1, t & 2, m, n, k, k == 17 ? 0.0f : 1.5f);
      }
    }
  }
}

TEST_CASE("gemm: above the tiles' size bound, across threads and inside a parallel region",
          "[tensor][gemm]") {
  Rng rng(6);
  const int saved = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    // B of 520 x 520 floats (past the tiles' bound: Eigen) and a product of 1.2 million
    // multiply-adds (split over the threads).
    for (int t = 0; t < 4; ++t) {
      check_gemm_strided(rng, t & 1, t & 2, 9, 520, 520, 0.0f);
      check_gemm_strided(rng, t & 1, t & 2, 72, 130, 130, 1.0f);
    }
  }
  set_num_threads(saved);
  // Conv2d calls gemm from its own parallel loops: each thread packs its own transposed B.
  std::vector<Tensor> a(4), b(4), c(4), expect(4);
  for (int i = 0; i < 4; ++i) {
    a[i] = Tensor::randn({40, 70}, rng);
    b[i] = Tensor::randn({50 + i, 70}, rng);
    c[i] = Tensor::zeros({40, 50 + i});
    expect[i] = c[i];
    gemm_naive(false, true, 40, 50 + i, 70, 1.0f, a[i].data(), 70, b[i].data(), 70, 0.0f,
               expect[i].data(), 50 + i);
  }
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 4; ++i)
    gemm(false, true, 40, 50 + i, 70, 1.0f, a[i].data(), 70, b[i].data(), 70, 0.0f, c[i].data(),
         50 + i);
  for (int i = 0; i < 4; ++i) CHECK(c[i].allclose(expect[i], 1e-4f, 1e-4f));
}

TEST_CASE("gemm: one row times a transposed matrix (Linear at batch 1) matches the naive loop",
          "[tensor][gemm]") {
  // This case has its own kernel: rows of B four at a time, the tail of K masked. K below, at
  // and past a vector of 16, N with and without a partial group of four, a row stride wider than
  // K, and beta == 0 over a C full of NaNs (which it must ignore).
  Rng rng(4);
  for (int64_t n : {1, 3, 4, 5, 84}) {
    for (int64_t k : {1, 15, 16, 17, 120, 400}) {
      for (const float beta : {0.0f, 2.0f}) {
        const int64_t ldb = k + 3;
        Tensor a = Tensor::randn({1, k}, rng), b = Tensor::randn({n, ldb}, rng);
        Tensor c1 = beta == 0.0f ? Tensor::full({1, n}, std::nanf("")) : Tensor::randn({1, n}, rng);
        Tensor c2 = c1;
        gemm(false, true, 1, n, k, 0.5f, a.data(), k, b.data(), ldb, beta, c1.data(), n);
        gemm_naive(false, true, 1, n, k, 0.5f, a.data(), k, b.data(), ldb, beta, c2.data(), n);
        INFO("n=" << n << " k=" << k << " beta=" << beta);
        CHECK(c1.allclose(c2, 1e-4f, 1e-4f));
      }
    }
  }
}
