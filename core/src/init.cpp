#include "effml/init.h"

#include <cmath>

#include "effml/rng.h"

namespace effml {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

void kaiming_normal_(Tensor& w, Rng& rng) {
  EFFML_CHECK(w.dim() >= 2 && w.size(0) > 0,
              "kaiming_normal_: expected a weight with 2+ dimensions, got " << w.shape_str());
  const int64_t fan_in = w.numel() / w.size(0);
  const float std = std::sqrt(2.0f / static_cast<float>(fan_in));
  float* p = w.data();
  for (int64_t i = 0; i < w.numel(); ++i) p[i] = std * rng.normal();
}

void init_kaiming(Module& model, uint64_t seed) {
  Rng rng(seed);
  for (auto& np : model.named_parameters()) {
    Tensor& v = np.param->value;
    if (v.dim() >= 2) {
      kaiming_normal_(v, rng);
    } else if (ends_with(np.name, "bias")) {
      v.zero_();
    } else {
      v.fill_(1.0f);  // batch-norm scale
    }
  }
  for (auto& nb : model.named_buffers()) {
    if (ends_with(nb.name, "running_var")) nb.tensor->fill_(1.0f);
    else if (ends_with(nb.name, "running_mean")) nb.tensor->zero_();
  }
}

}  // namespace effml
