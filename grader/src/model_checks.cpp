// Measurements of a returned model (see model_checks.h).
#include "effml/grader/model_checks.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "effml/error.h"
#include "effml/layers.h"
#include "effml/metrics.h"
#include "effml/models.h"
#include "effml/parallel.h"
#include "effml/safetensors.h"

namespace effml::grader {

ModelFigures measure_figures(Module& model) {
  ModelFigures f;
  f.parameters = count_parameters(model);
  f.nonzeros = count_nonzeros(model);
  f.dense_bytes = model_size_bytes(model, 32);
  f.sparse_bytes = sparse_model_size_bytes(model, 32);
  f.macs = count_macs(model, image_input_shape(1));
  for (const NamedParameter& p : model.named_parameters()) {
    const Tensor& v = p.param->value;
    if (v.dim() >= 2) {
      std::vector<float> values(v.data(), v.data() + v.numel());
      std::sort(values.begin(), values.end());
      const auto distinct = std::unique(values.begin(), values.end()) - values.begin();
      f.layers.push_back({p.name, v.numel(), v.count_nonzero(), static_cast<int64_t>(distinct)});
    }
  }
  return f;
}

std::vector<int64_t> vgg_widths_from(const std::string& checkpoint,
                                     const std::vector<int64_t>& baseline_cfg) {
  const SafetensorsFile file = load_safetensors(checkpoint);
  std::vector<int64_t> cfg = baseline_cfg;
  // make_vgg's features: conv, BN, ReLU per block and one layer per pool.
  int64_t layer = 0;
  for (int64_t& c : cfg) {
    if (c == 0) {
      ++layer;
      continue;
    }
    const std::string name = "features." + std::to_string(layer) + ".weight";
    EFFML_CHECK(file.contains(name), "no tensor '" << name << "' (a conv weight of the VGG)");
    const Tensor& w = file.at(name);
    EFFML_CHECK(w.dim() == 4 && w.size(0) >= 1,
                "'" << name << "' is " << w.shape_str() << ", not a conv weight (Cout, Cin, 3, 3)");
    c = w.size(0);
    layer += 3;
  }
  return cfg;
}

std::vector<int64_t> vgg_pruned_config(const std::vector<int64_t>& cfg, double ratio) {
  std::vector<int64_t> out = cfg;
  int64_t last = -1;
  for (std::size_t i = 0; i < cfg.size(); ++i) {
    if (cfg[i] != 0) last = static_cast<int64_t>(i);
  }
  for (std::size_t i = 0; i < cfg.size(); ++i) {
    if (cfg[i] != 0 && static_cast<int64_t>(i) != last) {
      out[i] = std::max<int64_t>(1, std::lround(static_cast<double>(cfg[i]) * (1.0 - ratio)));
    }
  }
  return out;
}

int64_t vgg_macs_formula(const std::vector<int64_t>& cfg) {
  int64_t macs = 0, channels = 1, size = 28;
  for (int64_t c : cfg) {
    if (c == 0) {
      size /= 2;
      continue;
    }
    macs += c * channels * 9 * size * size;
    channels = c;
  }
  return macs + channels * size * size * 10;
}

std::string check_channel_order(Sequential& vgg) {
  vgg_config(vgg);  // throws unless a VGG
  auto& features = dynamic_cast<Sequential&>(vgg[0]);
  std::vector<std::pair<std::size_t, Conv2d*>> convs;
  for (std::size_t i = 0; i < features.size(); ++i) {
    if (auto* c = dynamic_cast<Conv2d*>(&features[i])) convs.emplace_back(i, c);
  }
  for (std::size_t j = 0; j + 1 < convs.size(); ++j) {
    const Tensor& w = convs[j + 1].second->weight.value;  // (Cout, Cin, K, K)
    const int64_t out = w.size(0), in = w.size(1), kk = w.size(2) * w.size(3);
    double previous = std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < in; ++c) {
      double sum = 0;
      for (int64_t o = 0; o < out; ++o) {
        const float* p = w.data() + (o * in + c) * kk;
        for (int64_t k = 0; k < kk; ++k) sum += static_cast<double>(p[k]) * p[k];
      }
      const double importance = std::sqrt(sum);
      // A relative slack of 1e-6 lets float rounding of equal norms pass.
      if (importance > previous * (1 + 1e-6)) {
        return "output channels of features." + std::to_string(convs[j].first) +
               " are not sorted: the importance of input channel " + std::to_string(c) +
               " of features." + std::to_string(convs[j + 1].first) + " (" +
               std::to_string(importance) + ") exceeds that of channel " + std::to_string(c - 1) +
               " (" + std::to_string(previous) + ")";
      }
      previous = importance;
    }
  }
  return "";
}

LatencyPair measure_latency_pair(Module& baseline, Module& model, int rounds, int repeats) {
  const int threads = num_threads();
  set_num_threads(1);
  baseline.eval();
  model.eval();
  const Tensor x = Tensor::full(image_input_shape(1), 0.5f);
  LatencyPair best{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
  for (int r = 0; r < rounds; ++r) {
    best.baseline_ms = std::min(
        best.baseline_ms, measure_latency([&] { baseline.forward(x); }, 10, repeats).median_ms);
    best.model_ms =
        std::min(best.model_ms, measure_latency([&] { model.forward(x); }, 10, repeats).median_ms);
  }
  set_num_threads(threads);
  return best;
}

}  // namespace effml::grader
