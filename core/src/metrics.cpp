#include "effml/metrics.h"

#include <algorithm>
#include <chrono>

namespace effml {

namespace {
// Depth-first over leaves, propagating the shape through each Sequential in order.
Shape walk(Module& m, const std::string& name, const Shape& in, std::vector<LayerInfo>& out) {
  auto kids = m.children();
  if (!kids.empty()) {
    Shape s = in;
    for (auto& [child_name, child] : kids)
      s = walk(*child, name.empty() ? child_name : name + "." + child_name, s, out);
    return s;
  }
  LayerInfo info;
  info.name = name;
  info.description = m.describe();
  info.input_shape = in;
  info.output_shape = m.output_shape(in);
  for (auto& [pname, p] : m.local_parameters()) {
    info.parameters += p->value.numel();
    info.nonzeros += p->value.count_nonzero();
  }
  info.macs = m.macs(in);
  out.push_back(info);
  return info.output_shape;
}
}  // namespace

std::vector<LayerInfo> profile_layers(Module& model, const Shape& input_shape) {
  std::vector<LayerInfo> out;
  walk(model, "", input_shape, out);
  return out;
}

int64_t count_parameters(Module& model) { return model.num_parameters(); }

int64_t count_nonzeros(Module& model) {
  int64_t n = 0;
  for (auto& np : model.named_parameters()) n += np.param->value.count_nonzero();
  return n;
}

int64_t count_macs(Module& model, const Shape& input_shape) { return model.macs(input_shape); }

double model_size_bytes(Module& model, int bits) {
  EFFML_CHECK(bits > 0 && bits <= 64, "model_size_bytes: bits " << bits << " not in [1, 64]");
  return static_cast<double>(count_parameters(model)) * bits / 8.0;
}

double nonzero_size_bytes(Module& model, int bits) {
  EFFML_CHECK(bits > 0 && bits <= 64, "nonzero_size_bytes: bits " << bits << " not in [1, 64]");
  return static_cast<double>(count_nonzeros(model)) * bits / 8.0;
}

double bitmask_size_bits(int64_t numel, int64_t nonzeros, int bits) {
  EFFML_CHECK(bits > 0 && bits <= 64, "bitmask_size_bits: bits " << bits << " not in [1, 64]");
  EFFML_CHECK(numel >= 0 && nonzeros >= 0 && nonzeros <= numel,
              "bitmask_size_bits: " << nonzeros << " non-zeros of " << numel << " values");
  const double dense = static_cast<double>(numel) * bits;
  const double sparse = static_cast<double>(numel) + static_cast<double>(nonzeros) * bits;
  return std::min(dense, sparse);
}

double sparse_model_size_bytes(Module& model, int bits) {
  EFFML_CHECK(bits > 0 && bits <= 64,
              "sparse_model_size_bytes: bits " << bits << " not in [1, 64]");
  double total_bits = 0;
  for (const NamedParameter& p : model.named_parameters()) {
    const Tensor& v = p.param->value;
    total_bits += v.dim() >= 2 ? bitmask_size_bits(v.numel(), v.count_nonzero(), bits)
                               : static_cast<double>(v.numel()) * bits;
  }
  return total_bits / 8.0;
}

LatencyStats measure_latency(const std::function<void()>& fn, int warmup, int repeats) {
  EFFML_CHECK(repeats > 0 && warmup >= 0,
              "measure_latency: repeats " << repeats << " and warmup " << warmup);
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms(static_cast<std::size_t>(repeats));
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    ms[i] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  std::sort(ms.begin(), ms.end());
  LatencyStats s;
  s.repeats = repeats;
  s.min_ms = ms.front();
  s.median_ms = repeats % 2 ? ms[repeats / 2] : 0.5 * (ms[repeats / 2 - 1] + ms[repeats / 2]);
  s.p90_ms = ms[std::min<std::size_t>(ms.size() - 1, static_cast<std::size_t>(0.9 * repeats))];
  return s;
}

double accuracy(const Tensor& logits, const std::vector<int32_t>& labels) {
  EFFML_CHECK(logits.dim() == 2 && logits.size(0) == static_cast<int64_t>(labels.size()),
              "accuracy: logits " << logits.shape_str() << " do not match " << labels.size()
                                  << " labels");
  if (labels.empty()) return 0.0;
  const auto pred = logits.argmax_rows();
  int64_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) correct += pred[i] == labels[i];
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return n < 0 ? "-" + s : s;
}

}  // namespace effml
