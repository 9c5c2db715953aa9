// The integer-only VGG (see quantized.h): validation, file format and int8 inference.
#include "effml/quantized.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <utility>

// With AVX-512 VNNI (vpdpbusd: four u8 x s8 products summed into each int32 lane) the
// convolutions take the kernel of conv3x3_image_vnni; elsewhere the portable one of
// conv3x3_image. Both compute the same int32 sums exactly.
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#include <immintrin.h>
#define EFFML_INT8_VNNI 1
#else
#define EFFML_INT8_VNNI 0
#endif

#include "effml/error.h"
#include "effml/safetensors.h"

namespace effml {

int32_t requantize(int32_t acc, int32_t multiplier, int32_t shift) {
  // Saturating rounding doubling high multiply: (acc * M0 + 2^30) / 2^31, halves up. The only
  // overflow case, acc = M0 = -2^31, cannot happen with M0 >= 0.
  const int64_t p = static_cast<int64_t>(acc) * static_cast<int64_t>(multiplier);
  const int64_t nudge = p >= 0 ? (int64_t{1} << 30) : (1 - (int64_t{1} << 30));
  const int32_t high = static_cast<int32_t>((p + nudge) / (int64_t{1} << 31));
  // Rounding right shift, halves away from zero.
  const int32_t mask = static_cast<int32_t>((int64_t{1} << shift) - 1);
  const int32_t remainder = high & mask;
  const int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
  return (high >> shift) + (remainder > threshold ? 1 : 0);
}

namespace {

void check_layer(const QuantizedLayer& l, const Shape& weight_shape) {
  const std::string& n = l.name;
  EFFML_CHECK(l.weight.dtype() == DType::Int8 && l.weight.shape() == weight_shape,
              n << ".weight: expected int8 " << shape_str(weight_shape) << ", got "
                << dtype_name(l.weight.dtype()) << " " << l.weight.shape_str());
  const int64_t out = weight_shape[0];
  const Shape vec = {out};
  auto check_i32 = [&](const Tensor& t, const char* what) {
    EFFML_CHECK(t.dtype() == DType::Int32 && t.shape() == vec,
                n << "." << what << ": expected int32 " << shape_str(vec) << ", got "
                  << dtype_name(t.dtype()) << " " << t.shape_str());
  };
  check_i32(l.bias, "bias");
  check_i32(l.multiplier, "multiplier");
  check_i32(l.shift, "shift");
  for (int64_t o = 0; o < out; ++o) {
    const int32_t m = l.multiplier.data_i32()[o], s = l.shift.data_i32()[o];
    EFFML_CHECK(m >= 0, n << ".multiplier[" << o << "] = " << m << " is negative");
    EFFML_CHECK(s >= 0 && s <= 31, n << ".shift[" << o << "] = " << s << " is outside [0, 31]");
  }
  EFFML_CHECK(l.input_zero_point >= -128 && l.input_zero_point <= 127,
              n << ".input_zero_point = " << l.input_zero_point << " is outside [-128, 127]");
  EFFML_CHECK(l.output_zero_point >= -128 && l.output_zero_point <= 127,
              n << ".output_zero_point = " << l.output_zero_point << " is outside [-128, 127]");
  EFFML_CHECK(l.weight_scale.dtype() == DType::Float32 && l.weight_scale.shape() == vec,
              n << ".weight_scale: expected float32 " << shape_str(vec) << ", got "
                << dtype_name(l.weight_scale.dtype()) << " " << l.weight_scale.shape_str());
}

// Register tiles of the int8 convolution: kTileO output channels times kTileP positions of int32
// accumulators (4 x 16 = 64: a few vector registers), so that each patch value loaded is used for
// kTileO outputs and each accumulator stays in a register across the whole reduction.
constexpr int64_t kTileO = 4;  // the kernel below names its four accumulator rows
constexpr int64_t kTileP = 16;

// A conv's int8 weights (O, C * 9) widened to int32 and laid out by tile: for output tile t,
// reduction index kk, the kTileO weights of outputs t * kTileO .. t * kTileO + 3 side by side
// (0 beyond O), so the kernel reads them contiguously.
std::vector<int32_t> pack_conv_weights(const QuantizedLayer& l) {
  const int64_t out = l.weight.size(0), k = l.weight.numel() / out;
  const int64_t tiles = (out + kTileO - 1) / kTileO;
  std::vector<int32_t> packed(static_cast<std::size_t>(tiles * k * kTileO), 0);
  const int8_t* wq = l.weight.data_i8();
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t kk = 0; kk < k; ++kk) {
      packed[static_cast<std::size_t>(((o / kTileO) * k + kk) * kTileO + o % kTileO)] =
          wq[o * k + kk];
    }
  }
  return packed;
}

// Calls store(kk, p, v) for every tap kk = (ci * 3 + ki) * 3 + kj of every output position
// p = i * w + j of a 3x3, padding-1 conv on x (C, H, W) whose input (i + ki - 1, j + kj - 1)
// lies inside the image, with v that input. The caller's buffer holds the padding value
// wherever store is not called.
template <class Store>
void gather_patches(const int8_t* x, int64_t c, int64_t h, int64_t w, Store store) {
  for (int64_t ci = 0; ci < c; ++ci) {
    for (int64_t ki = 0; ki < 3; ++ki) {
      for (int64_t kj = 0; kj < 3; ++kj) {
        const int64_t kk = (ci * 3 + ki) * 3 + kj;
        const int64_t i0 = ki == 0 ? 1 : 0, i1 = ki == 2 ? h - 1 : h;
        const int64_t j0 = kj == 0 ? 1 : 0, j1 = kj == 2 ? w - 1 : w;
        for (int64_t i = i0; i < i1; ++i) {
          const int8_t* src = x + (ci * h + i + ki - 1) * w + kj - 1;
          for (int64_t j = j0; j < j1; ++j) store(kk, i * w + j, src[j]);
        }
      }
    }
  }
}

// One image's conv3x3 (stride 1, padding 1) with requantization. x: (C, H, W) int8, y: (O, H, W).
// The patches are gathered once per image as int16 values x - Zx (padding: 0 = Zx - Zx), in rows
// of the reduction index padded to a whole number of position tiles; then each tile of outputs
// and positions is an int32 reduction over C * 9 taps (see kTileO).
void conv3x3_image(const QuantizedLayer& l, const std::vector<int32_t>& packed, const int8_t* x,
                   int64_t c, int64_t h, int64_t w, int8_t* y, std::vector<int16_t>& cols) {
  const int64_t out = l.weight.size(0), hw = h * w, k = c * 9;
  const int64_t hwp = (hw + kTileP - 1) / kTileP * kTileP;
  cols.assign(static_cast<std::size_t>(k * hwp), 0);
  const int32_t zx = l.input_zero_point;
  int16_t* cp = cols.data();
  gather_patches(x, c, h, w, [cp, hwp, zx](int64_t kk, int64_t p, int8_t v) {
    cp[kk * hwp + p] = static_cast<int16_t>(v - zx);
  });
  const int32_t* bias = l.bias.data_i32();
  const int32_t* mult = l.multiplier.data_i32();
  const int32_t* shift = l.shift.data_i32();
  const int32_t zy = l.output_zero_point;
  for (int64_t o0 = 0; o0 < out; o0 += kTileO) {
    const int32_t* wt = packed.data() + (o0 / kTileO) * k * kTileO;
    for (int64_t p0 = 0; p0 < hwp; p0 += kTileP) {
      int32_t acc0[kTileP] = {}, acc1[kTileP] = {}, acc2[kTileP] = {}, acc3[kTileP] = {};
      for (int64_t kk = 0; kk < k; ++kk) {
        const int16_t* row = cols.data() + kk * hwp + p0;
        const int32_t* wk = wt + kk * kTileO;
        const int32_t w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3];
#pragma omp simd
        for (int64_t j = 0; j < kTileP; ++j) {
          const int32_t xv = row[j];
          acc0[j] += w0 * xv;
          acc1[j] += w1 * xv;
          acc2[j] += w2 * xv;
          acc3[j] += w3 * xv;
        }
      }
      const int32_t* acc[kTileO] = {acc0, acc1, acc2, acc3};
      for (int64_t t = 0; t < kTileO && o0 + t < out; ++t) {
        const int64_t o = o0 + t;
        int8_t* yo = y + o * hw;
        for (int64_t j = 0; j < kTileP && p0 + j < hw; ++j) {
          const int32_t v = requantize(acc[t][j] + bias[o], mult[o], shift[o]) + zy;
          yo[p0 + j] = static_cast<int8_t>(std::clamp(v, -128, 127));
        }
      }
    }
  }
}

#if EFFML_INT8_VNNI
// The VNNI kernel multiplies unsigned by signed bytes, so it reads each input as the unsigned
// x + 128 and corrects the sums:
//   sum_k (x_k - Zx) w_k = sum_k (x_k + 128) w_k - (Zx + 128) sum_k w_k,
// with the padding stored as Zx + 128 (so that it adds (Zx - Zx) w = 0, as in conv3x3_image).
// Tiles of kVnniO outputs times 16 positions: kVnniO int32 vectors of accumulators; each step
// reads 4 reduction indices (a quad) of 16 positions, one 64-byte load used kVnniO times.
constexpr int64_t kVnniO = 8;

// The weights for the kernel: per output tile t and quad q, the kVnniO outputs' four weights
// w[o][4q .. 4q + 3] as one 32-bit word each (zeros past k and past O); and per output o the
// correction (Zx + 128) * sum_k w[o][k].
struct VnniWeights {
  int64_t k4 = 0;                   // quads: ceil(k / 4)
  std::vector<int32_t> words;       // (tiles, k4, kVnniO)
  std::vector<int32_t> correction;  // (O)
};

VnniWeights pack_vnni(const QuantizedLayer& l) {
  const int64_t out = l.weight.size(0), k = l.weight.numel() / out;
  const int64_t tiles = (out + kVnniO - 1) / kVnniO;
  VnniWeights p;
  p.k4 = (k + 3) / 4;
  p.words.assign(static_cast<std::size_t>(tiles * p.k4 * kVnniO), 0);
  p.correction.assign(static_cast<std::size_t>(out), 0);
  const int8_t* wq = l.weight.data_i8();
  for (int64_t o = 0; o < out; ++o) {
    int32_t sum = 0;
    for (int64_t q = 0; q < p.k4; ++q) {
      int8_t quad[4] = {0, 0, 0, 0};
      for (int64_t r = 0; r < 4 && 4 * q + r < k; ++r) {
        quad[r] = wq[o * k + 4 * q + r];
        sum += quad[r];
      }
      const int64_t at = ((o / kVnniO) * p.k4 + q) * kVnniO + o % kVnniO;
      std::memcpy(&p.words[static_cast<std::size_t>(at)], quad, 4);
    }
    // Wrapping like the kernel's int32 lanes (it cannot wrap for the course's models: at most
    // 255 * 128 * k).
    p.correction[static_cast<std::size_t>(o)] = static_cast<int32_t>(
        static_cast<uint32_t>(l.input_zero_point + 128) * static_cast<uint32_t>(sum));
  }
  return p;
}

// requantize() on 16 lanes, exactly: acc (16 int32), one multiplier and shift.
inline __m512i requantize16(__m512i acc, int32_t multiplier, int32_t shift) {
  // acc * M in int64, the even lanes and the odd lanes apart (vpmuldq multiplies the low 32 bits
  // of each 64-bit lane as signed).
  const __m512i m = _mm512_set1_epi64(multiplier);
  const __m512i p_even = _mm512_mul_epi32(acc, m);
  const __m512i p_odd = _mm512_mul_epi32(_mm512_srli_epi64(acc, 32), m);
  // (p + nudge) / 2^31 rounded toward zero, as the scalar division: nudge = 2^30 for p >= 0,
  // 1 - 2^30 below; a negative sum first gets 2^31 - 1 added, so that the arithmetic shift
  // (which rounds toward minus infinity) truncates.
  const __m512i zero = _mm512_setzero_si512();
  const __m512i up = _mm512_set1_epi64(int64_t{1} << 30);
  const __m512i down = _mm512_set1_epi64(1 - (int64_t{1} << 30));
  const __m512i bias_neg = _mm512_set1_epi64((int64_t{1} << 31) - 1);
  auto high64 = [&](__m512i p) {
    const __m512i nudge = _mm512_mask_blend_epi64(_mm512_cmpge_epi64_mask(p, zero), down, up);
    const __m512i t = _mm512_add_epi64(p, nudge);
    const __m512i u = _mm512_mask_add_epi64(t, _mm512_cmplt_epi64_mask(t, zero), t, bias_neg);
    return _mm512_srai_epi64(u, 31);
  };
  // The int32 results back in their lanes: even lanes from the low halves of high64(p_even),
  // odd lanes from those of high64(p_odd) moved up.
  const __m512i high = _mm512_mask_blend_epi32(__mmask16(0xAAAA), high64(p_even),
                                               _mm512_slli_epi64(high64(p_odd), 32));
  // Rounding right shift, halves away from zero: + 1 where the remainder exceeds half the
  // divisor (half plus one for a negative value).
  const int32_t mask = static_cast<int32_t>((int64_t{1} << shift) - 1);
  const __m512i remainder = _mm512_and_si512(high, _mm512_set1_epi32(mask));
  const __m512i threshold =
      _mm512_add_epi32(_mm512_set1_epi32(mask >> 1), _mm512_srli_epi32(high, 31));
  const __m512i shifted = _mm512_srai_epi32(high, static_cast<unsigned>(shift));
  return _mm512_mask_add_epi32(shifted, _mm512_cmpgt_epi32_mask(remainder, threshold), shifted,
                               _mm512_set1_epi32(1));
}

// conv3x3_image with the VNNI kernel. cols: (k4, hwp, 4) bytes, position p's quad q at
// ((q * hwp) + p) * 4: x + 128 inside the image, Zx + 128 in the padding and past k.
void conv3x3_image_vnni(const QuantizedLayer& l, const VnniWeights& pw, const int8_t* x,
                        int64_t c, int64_t h, int64_t w, int8_t* y, std::vector<uint8_t>& cols) {
  const int64_t out = l.weight.size(0), hw = h * w, k4 = pw.k4;
  const int64_t hwp = (hw + 15) / 16 * 16;
  const uint8_t pad = static_cast<uint8_t>(l.input_zero_point + 128);
  cols.assign(static_cast<std::size_t>(k4 * hwp * 4), pad);
  uint8_t* cp = cols.data();
  gather_patches(x, c, h, w, [cp, hwp](int64_t kk, int64_t p, int8_t v) {
    cp[((kk / 4) * hwp + p) * 4 + kk % 4] = static_cast<uint8_t>(static_cast<int32_t>(v) + 128);
  });
  const int32_t* bias = l.bias.data_i32();
  const int32_t* mult = l.multiplier.data_i32();
  const int32_t* shift = l.shift.data_i32();
  const int32_t zy = l.output_zero_point;
  for (int64_t o0 = 0; o0 < out; o0 += kVnniO) {
    const int32_t* wt = pw.words.data() + (o0 / kVnniO) * k4 * kVnniO;
    for (int64_t p0 = 0; p0 < hwp; p0 += 16) {
      __m512i a[kVnniO];
      for (int64_t t = 0; t < kVnniO; ++t) a[t] = _mm512_setzero_si512();
      const uint8_t* xp = cols.data() + p0 * 4;
      for (int64_t q = 0; q < k4; ++q) {
        const __m512i xv = _mm512_loadu_si512(xp + q * hwp * 4);
        const int32_t* wq = wt + q * kVnniO;
        for (int64_t t = 0; t < kVnniO; ++t)
          a[t] = _mm512_dpbusd_epi32(a[t], xv, _mm512_set1_epi32(wq[t]));
      }
      const __mmask16 keep =
          hw - p0 >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (hw - p0)) - 1);
      for (int64_t t = 0; t < kVnniO && o0 + t < out; ++t) {
        const int64_t o = o0 + t;
        // bias - correction with int32 wrap-around, as the lanes add.
        const int32_t offset = static_cast<int32_t>(
            static_cast<uint32_t>(bias[o]) -
            static_cast<uint32_t>(pw.correction[static_cast<std::size_t>(o)]));
        const __m512i v = requantize16(_mm512_add_epi32(a[t], _mm512_set1_epi32(offset)),
                                       mult[o], shift[o]);
        const __m512i q = _mm512_add_epi32(v, _mm512_set1_epi32(zy));
        // Saturating narrowing to int8 is the clamp to [-128, 127].
        _mm_mask_storeu_epi8(y + o * hw + p0, keep, _mm512_cvtsepi32_epi8(q));
      }
    }
  }
}
#endif

void maxpool2_image(const int8_t* x, int64_t c, int64_t h, int64_t w, int8_t* y) {
  const int64_t ho = h / 2, wo = w / 2;
  for (int64_t ci = 0; ci < c; ++ci) {
    for (int64_t i = 0; i < ho; ++i) {
      for (int64_t j = 0; j < wo; ++j) {
        const int8_t* p = x + (ci * h + 2 * i) * w + 2 * j;
        y[(ci * ho + i) * wo + j] = std::max(std::max(p[0], p[1]), std::max(p[w], p[w + 1]));
      }
    }
  }
}

void linear_image(const QuantizedLayer& l, const int8_t* x, int8_t* y) {
  const int64_t out = l.weight.size(0), in = l.weight.size(1);
  const int8_t* wq = l.weight.data_i8();
  const int32_t zx = l.input_zero_point;
  for (int64_t o = 0; o < out; ++o) {
    int32_t a = l.bias.data_i32()[o];
    const int8_t* wo = wq + o * in;
    for (int64_t i = 0; i < in; ++i) a += (static_cast<int32_t>(x[i]) - zx) * wo[i];
    const int32_t v = requantize(a, l.multiplier.data_i32()[o], l.shift.data_i32()[o]) +
                      l.output_zero_point;
    y[o] = static_cast<int8_t>(std::clamp(v, -128, 127));
  }
}

}  // namespace

void QuantizedVgg::validate() const {
  EFFML_CHECK(!cfg.empty(), "quantized VGG: empty cfg");
  int64_t channels = 1, size = 28, index = 0;
  std::size_t conv = 0;
  for (std::size_t i = 0; i < cfg.size(); ++i) {
    const int64_t c = cfg[i];
    EFFML_CHECK(c >= 0, "quantized VGG: cfg[" << i << "] = " << c << " is negative");
    if (c == 0) {
      EFFML_CHECK(size >= 2, "quantized VGG: pool at cfg[" << i << "] on a " << size << "x"
                                                           << size << " map");
      size /= 2;
      index += 1;
      continue;
    }
    EFFML_CHECK(conv < convs.size(), "quantized VGG: cfg has more conv blocks than the "
                                         << convs.size() << " layers given");
    const std::string want = "features." + std::to_string(index);
    EFFML_CHECK(convs[conv].name == want, "quantized VGG: conv block " << conv << " is named '"
                                              << convs[conv].name << "', expected '" << want
                                              << "' (its index in the fp32 VGG's features)");
    check_layer(convs[conv], {c, channels, 3, 3});
    index += 3;
    channels = c;
    ++conv;
  }
  EFFML_CHECK(conv > 0, "quantized VGG: cfg has no conv block");
  EFFML_CHECK(conv == convs.size(), "quantized VGG: cfg has " << conv << " conv blocks but "
                                                              << convs.size() << " layers given");
  EFFML_CHECK(classifier.name == "classifier",
              "quantized VGG: the classifier is named '" << classifier.name << "', expected 'classifier'");
  check_layer(classifier, {10, channels * size * size});
}

bool int8_vnni_available() { return EFFML_INT8_VNNI != 0; }

namespace detail {
struct Int8Packs {
  bool vnni = false;
  // What the packs were made from: each conv's int8 weights and input zero point.
  std::vector<std::vector<int8_t>> weights;
  std::vector<int32_t> zero_points;
  std::vector<std::vector<int32_t>> portable;  // pack_conv_weights, one per conv (Portable)
#if EFFML_INT8_VNNI
  std::vector<VnniWeights> vnni_packs;         // pack_vnni, one per conv (VNNI)
#endif
};
}  // namespace detail

namespace {
bool packed_from(const detail::Int8Packs& p, const QuantizedVgg& m, bool vnni) {
  if (p.vnni != vnni || p.weights.size() != m.convs.size()) return false;
  for (std::size_t i = 0; i < m.convs.size(); ++i) {
    const Tensor& w = m.convs[i].weight;
    if (p.zero_points[i] != m.convs[i].input_zero_point ||
        p.weights[i].size() != static_cast<std::size_t>(w.numel()) ||
        std::memcmp(p.weights[i].data(), w.data_i8(), p.weights[i].size()) != 0)
      return false;
  }
  return true;
}

// The packs of m's (validated) convolutions for the chosen kernel, cached in m.pack_cache.
std::shared_ptr<const detail::Int8Packs> packs_for(const QuantizedVgg& m,
                                                   [[maybe_unused]] bool vnni) {
  detail::Int8PackCache& cache = m.pack_cache;
  std::lock_guard<std::mutex> lock(cache.mutex);
  if (cache.packs && packed_from(*cache.packs, m, vnni)) return cache.packs;
  auto p = std::make_shared<detail::Int8Packs>();
  p->vnni = vnni;
  for (const QuantizedLayer& l : m.convs) {
    p->weights.emplace_back(l.weight.data_i8(), l.weight.data_i8() + l.weight.numel());
    p->zero_points.push_back(l.input_zero_point);
#if EFFML_INT8_VNNI
    if (vnni) {
      p->vnni_packs.push_back(pack_vnni(l));
      continue;
    }
#endif
    p->portable.push_back(pack_conv_weights(l));
  }
  cache.packs = p;
  return p;
}
}  // namespace

Tensor QuantizedVgg::forward(const Tensor& x_q, Int8Kernel kernel) const {
  EFFML_CHECK(x_q.dtype() == DType::Int8 && x_q.dim() == 4 && x_q.size(1) == 1 &&
                  x_q.size(2) == 28 && x_q.size(3) == 28,
              "quantized VGG: expected int8 images (N, 1, 28, 28), got "
                  << dtype_name(x_q.dtype()) << " " << x_q.shape_str());
  validate();  // a hand-built model is checked before any index is trusted
  const int64_t n = x_q.size(0);
  Tensor out({n, 10}, DType::Int8);
  const int8_t* xin = x_q.data_i8();
  int8_t* yout = out.data_i8();
  [[maybe_unused]] const bool vnni = kernel == Int8Kernel::Best && int8_vnni_available();
  // The weights as the chosen kernel reads them: from the cache when it was packed for this
  // kernel from the same weights and zero points, else packed now and cached.
  const std::shared_ptr<const detail::Int8Packs> packs = packs_for(*this, vnni);
  const std::vector<std::vector<int32_t>>& packed = packs->portable;
#if EFFML_INT8_VNNI
  const std::vector<VnniWeights>& packed_vnni = packs->vnni_packs;
#endif
  // One image needs no second thread (it would only spin).
#pragma omp parallel if (n > 1)
  {
    // Per thread: two ping-pong activation buffers and the conv's scratch.
    std::vector<int8_t> a, b;
    std::vector<int16_t> cols;
    std::vector<uint8_t> cols_u8;
#pragma omp for schedule(static)
    for (int64_t img = 0; img < n; ++img) {
      a.assign(xin + img * 784, xin + (img + 1) * 784);
      int64_t c = 1, h = 28, w = 28;
      std::size_t conv = 0;
      for (int64_t v : cfg) {
        if (v == 0) {
          b.resize(static_cast<std::size_t>(c * (h / 2) * (w / 2)));
          maxpool2_image(a.data(), c, h, w, b.data());
          h /= 2;
          w /= 2;
        } else {
          b.resize(static_cast<std::size_t>(v * h * w));
#if EFFML_INT8_VNNI
          if (vnni)
            conv3x3_image_vnni(convs[conv], packed_vnni[conv], a.data(), c, h, w, b.data(),
                               cols_u8);
          else
#endif
            conv3x3_image(convs[conv], packed[conv], a.data(), c, h, w, b.data(), cols);
          ++conv;
          c = v;
        }
        std::swap(a, b);
      }
      linear_image(classifier, a.data(), yout + img * 10);
    }
  }
  return out;
}

int64_t QuantizedVgg::parameter_bytes() const {
  int64_t bytes = 0;
  auto add = [&](const QuantizedLayer& l) {
    bytes += l.weight.numel() + 4 * (l.bias.numel() + l.multiplier.numel() + l.shift.numel()) +
             8;
  };
  for (const QuantizedLayer& l : convs) add(l);
  add(classifier);
  return bytes;
}

Tensor pixels_to_int8(const Tensor& images01) {
  EFFML_CHECK(images01.dtype() == DType::Float32 && images01.dim() == 4 &&
                  images01.size(1) == 1 && images01.size(2) == 28 && images01.size(3) == 28,
              "pixels_to_int8: expected float32 images (N, 1, 28, 28) in [0, 1], got "
                  << dtype_name(images01.dtype()) << " " << images01.shape_str());
  Tensor q(images01.shape(), DType::Int8);
  const float* v = images01.data();
  int8_t* out = q.data_i8();
  for (int64_t i = 0; i < images01.numel(); ++i) {
    EFFML_CHECK(v[i] >= 0.0f && v[i] <= 1.0f,
                "pixels_to_int8: value " << std::setprecision(9) << v[i] << " at index " << i
                                         << " is outside [0, 1] (pass images that are not "
                                            "normalised: load_fashion_mnist(split, dir, false))");
    const long p = std::lround(static_cast<double>(v[i]) * 255.0);
    out[i] = static_cast<int8_t>(p - 128);
  }
  return q;
}

namespace {

Tensor scalar_i32(int32_t v) { return Tensor::from_i32({}, {v}); }
Tensor scalar_f32(float v) { return Tensor({}, std::vector<float>{v}); }

}  // namespace

std::vector<std::pair<std::string, Tensor>> quantized_vgg_tensors(const QuantizedVgg& model) {
  std::vector<int32_t> cfg32(model.cfg.begin(), model.cfg.end());
  std::vector<std::pair<std::string, Tensor>> out;
  out.emplace_back("cfg", Tensor::from_i32({static_cast<int64_t>(cfg32.size())}, cfg32));
  auto add_layer = [&](const QuantizedLayer& l) {
    out.emplace_back(l.name + ".weight", l.weight);
    out.emplace_back(l.name + ".bias", l.bias);
    out.emplace_back(l.name + ".multiplier", l.multiplier);
    out.emplace_back(l.name + ".shift", l.shift);
    out.emplace_back(l.name + ".input_zero_point", scalar_i32(l.input_zero_point));
    out.emplace_back(l.name + ".output_zero_point", scalar_i32(l.output_zero_point));
    out.emplace_back(l.name + ".weight_scale", l.weight_scale);
    out.emplace_back(l.name + ".input_scale", scalar_f32(l.input_scale));
    out.emplace_back(l.name + ".output_scale", scalar_f32(l.output_scale));
  };
  for (const QuantizedLayer& l : model.convs) add_layer(l);
  add_layer(model.classifier);
  return out;
}

void save_quantized_vgg(const std::string& path, const QuantizedVgg& model,
                        const std::map<std::string, std::string>& metadata) {
  model.validate();
  const std::vector<std::pair<std::string, Tensor>> tensors = quantized_vgg_tensors(model);
  std::vector<std::pair<std::string, const Tensor*>> refs;
  for (const auto& [name, t] : tensors) refs.emplace_back(name, &t);
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "effml-quantized-vgg";
  save_safetensors(path, refs, meta);
}

QuantizedVgg load_quantized_vgg(const std::string& path) {
  const SafetensorsFile f = load_safetensors(path);
  try {
    QuantizedVgg m;
    const Tensor& cfg = f.at("cfg");
    EFFML_CHECK(cfg.dtype() == DType::Int32 && cfg.dim() == 1,
                "'cfg' must be an int32 vector, got " << dtype_name(cfg.dtype()) << " "
                                                      << cfg.shape_str());
    for (int64_t i = 0; i < cfg.numel(); ++i) m.cfg.push_back(cfg.data_i32()[i]);
    auto scalar_int = [&](const std::string& name) {
      const Tensor& t = f.at(name);
      EFFML_CHECK(t.dtype() == DType::Int32 && t.numel() == 1,
                  "'" << name << "' must be one int32, got " << dtype_name(t.dtype()) << " "
                      << t.shape_str());
      return t.data_i32()[0];
    };
    auto scalar_float = [&](const std::string& name) {
      const Tensor& t = f.at(name);
      EFFML_CHECK(t.dtype() == DType::Float32 && t.numel() == 1,
                  "'" << name << "' must be one float32, got " << dtype_name(t.dtype()) << " "
                      << t.shape_str());
      return t.data()[0];
    };
    auto read_layer = [&](const std::string& name) {
      QuantizedLayer l;
      l.name = name;
      l.weight = f.at(name + ".weight");
      l.bias = f.at(name + ".bias");
      l.multiplier = f.at(name + ".multiplier");
      l.shift = f.at(name + ".shift");
      l.input_zero_point = scalar_int(name + ".input_zero_point");
      l.output_zero_point = scalar_int(name + ".output_zero_point");
      l.weight_scale = f.at(name + ".weight_scale");
      l.input_scale = scalar_float(name + ".input_scale");
      l.output_scale = scalar_float(name + ".output_scale");
      return l;
    };
    // Conv blocks are named by their index in the fp32 VGG's features: 3 modules per block
    // (conv, batch norm, ReLU), 1 per pool.
    int64_t index = 0;
    for (int64_t c : m.cfg) {
      if (c == 0) {
        index += 1;
      } else {
        m.convs.push_back(read_layer("features." + std::to_string(index)));
        index += 3;
      }
    }
    m.classifier = read_layer("classifier");
    m.validate();
    return m;
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

double quantized_accuracy(const QuantizedVgg& model, const Tensor& images01,
                          const std::vector<int32_t>& labels) {
  EFFML_CHECK(images01.dim() == 4 && images01.size(0) == static_cast<int64_t>(labels.size()),
              "quantized_accuracy: " << images01.shape_str() << " images but " << labels.size()
                                     << " labels");
  if (labels.empty()) return 0.0;
  const Tensor logits = model.forward(pixels_to_int8(images01));
  int64_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const int8_t* row = logits.data_i8() + i * 10;
    const int64_t best = std::max_element(row, row + 10) - row;  // first maximum
    correct += best == labels[i];
  }
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

Tensor fake_quantize_per_channel(const Tensor& w, int bits) {
  EFFML_CHECK(w.dtype() == DType::Float32 && w.dim() >= 2,
              "fake_quantize_per_channel: expected a float32 weight of 2 or more dimensions, got "
                  << dtype_name(w.dtype()) << " " << w.shape_str());
  EFFML_CHECK(bits >= 2 && bits <= 8, "fake_quantize_per_channel: bits must be in [2, 8], got "
                                          << bits);
  const int32_t qmax = (1 << (bits - 1)) - 1, qmin = -(1 << (bits - 1));
  const int64_t out = w.size(0), per = w.numel() / std::max<int64_t>(out, 1);
  Tensor q(w.shape());
  for (int64_t c = 0; c < out; ++c) {
    float max_abs = 0.0f;
    for (int64_t i = c * per; i < (c + 1) * per; ++i) max_abs = std::max(max_abs, std::fabs(w[i]));
    const float scale = max_abs > 0.0f ? max_abs / static_cast<float>(qmax) : 1.0f;
    for (int64_t i = c * per; i < (c + 1) * per; ++i) {
      const float level = std::clamp(std::nearbyint(w[i] / scale), static_cast<float>(qmin),
                                     static_cast<float>(qmax));
      q[i] = level * scale;
    }
  }
  return q;
}

int64_t max_levels_per_channel(const Tensor& w) {
  if (w.dim() == 0 || w.numel() == 0) return 0;
  const int64_t out = w.size(0), per = w.numel() / out;
  int64_t most = 0;
  std::vector<float> values;
  for (int64_t c = 0; c < out; ++c) {
    values.assign(w.data() + c * per, w.data() + (c + 1) * per);
    std::sort(values.begin(), values.end());
    most = std::max<int64_t>(most, std::unique(values.begin(), values.end()) - values.begin());
  }
  return most;
}

}  // namespace effml
