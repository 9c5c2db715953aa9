#include "effml/models.h"

#include "effml/error.h"
#include "effml/init.h"
#include "effml/layers.h"

namespace effml {

Shape image_input_shape(int64_t batch) { return {batch, 1, 28, 28}; }

std::unique_ptr<Sequential> make_lenet300() {
  auto m = std::make_unique<Sequential>();
  m->emplace_named<Flatten>("flatten");
  m->emplace_named<Linear>("fc1", 784, 300);
  m->emplace_named<ReLU>("relu1");
  m->emplace_named<Linear>("fc2", 300, 100);
  m->emplace_named<ReLU>("relu2");
  m->emplace_named<Linear>("fc3", 100, 10);
  return m;
}

std::unique_ptr<Sequential> make_lenet5() {
  auto m = std::make_unique<Sequential>();
  auto& f = m->emplace_named<Sequential>("features");
  f.emplace<Conv2d>(1, 6, 5, 1, 2);  // (N,1,28,28) -> (N,6,28,28)
  f.emplace<ReLU>();
  f.emplace<MaxPool2d>(2);           // -> (N,6,14,14)
  f.emplace<Conv2d>(6, 16, 5);       // -> (N,16,10,10)
  f.emplace<ReLU>();
  f.emplace<MaxPool2d>(2);           // -> (N,16,5,5)
  m->emplace_named<Flatten>("flatten");
  auto& c = m->emplace_named<Sequential>("classifier");
  c.emplace<Linear>(400, 120);
  c.emplace<ReLU>();
  c.emplace<Linear>(120, 84);
  c.emplace<ReLU>();
  c.emplace<Linear>(84, 10);
  return m;
}

std::unique_ptr<Sequential> make_vgg() {
  // 0 stands for a 2x2 max-pool, as 'M' in torchvision's VGG configurations.
  return make_vgg({16, 0, 32, 0, 64, 64, 0});
}

std::unique_ptr<Sequential> make_vgg(const std::vector<int64_t>& cfg) {
  EFFML_CHECK(!cfg.empty(), "make_vgg: empty cfg");
  auto m = std::make_unique<Sequential>();
  auto& f = m->emplace_named<Sequential>("features");
  int64_t channels = 1, size = 28, convs = 0;
  for (std::size_t i = 0; i < cfg.size(); ++i) {
    const int64_t c = cfg[i];
    EFFML_CHECK(c >= 0, "make_vgg: cfg[" << i << "] = " << c << " is negative");
    if (c == 0) {
      EFFML_CHECK(size >= 2, "make_vgg: pool at cfg[" << i << "] on a " << size << "x" << size
                                                      << " map");
      f.emplace<MaxPool2d>(2);
      size /= 2;
      continue;
    }
    // No conv bias: the batch-norm shift that follows makes it redundant.
    f.emplace<Conv2d>(channels, c, 3, 1, 1, 1, false);
    f.emplace<BatchNorm2d>(c);
    f.emplace<ReLU>();
    channels = c;
    ++convs;
  }
  EFFML_CHECK(convs > 0, "make_vgg: cfg has no conv block (only pools)");
  m->emplace_named<Flatten>("flatten");
  m->emplace_named<Linear>("classifier", channels * size * size, 10);
  return m;
}

std::vector<int64_t> vgg_config(Sequential& model) {
  EFFML_CHECK(model.size() == 3 && model.name_at(0) == "features",
              "vgg_config: expected a VGG (features, flatten, classifier), got "
                  << model.size() << " top-level layers");
  auto* f = dynamic_cast<Sequential*>(&model[0]);
  EFFML_CHECK(f != nullptr, "vgg_config: layer 'features' is not a Sequential");
  // The layers make_vgg(cfg) builds, in its order: conv3x3 (stride 1, padding 1, no bias),
  // BatchNorm2d of the conv's width, ReLU; or MaxPool2d; then Linear(C * S * S, 10).
  std::vector<int64_t> cfg;
  int64_t channels = 1, size = 28;
  auto fail_at = [&](std::size_t i, const char* want) {
    throw Error("vgg_config: features." + std::to_string(i) + " is " +
                (i < f->size() ? (*f)[i].describe() : std::string("missing")) + ", expected " +
                want + " (not a VGG built by make_vgg)");
  };
  for (std::size_t i = 0; i < f->size();) {
    if (dynamic_cast<MaxPool2d*>(&(*f)[i])) {
      cfg.push_back(0);
      size /= 2;
      ++i;
      continue;
    }
    auto* conv = dynamic_cast<Conv2d*>(&(*f)[i]);
    if (conv == nullptr || conv->kernel_size() != 3 || conv->stride() != 1 ||
        conv->padding() != 1 || conv->groups() != 1 || conv->has_bias() ||
        conv->in_channels() != channels) {
      fail_at(i, ("a 3x3 conv from " + std::to_string(channels) + " channels, stride 1, "
                  "padding 1, no bias, or a 2x2 max-pool").c_str());
    }
    auto* bn = i + 1 < f->size() ? dynamic_cast<BatchNorm2d*>(&(*f)[i + 1]) : nullptr;
    if (bn == nullptr || bn->num_features() != conv->out_channels()) {
      fail_at(i + 1, ("BatchNorm2d(" + std::to_string(conv->out_channels()) + ")").c_str());
    }
    if (i + 2 >= f->size() || dynamic_cast<ReLU*>(&(*f)[i + 2]) == nullptr) fail_at(i + 2, "ReLU");
    channels = conv->out_channels();
    cfg.push_back(channels);
    i += 3;
  }
  auto* classifier = dynamic_cast<Linear*>(&model[2]);
  EFFML_CHECK(classifier != nullptr && classifier->in_features() == channels * size * size &&
                  classifier->out_features() == 10,
              "vgg_config: 'classifier' is " << model[2].describe() << ", expected Linear("
                                             << channels * size * size << ", 10)");
  return cfg;
}

std::vector<std::string> model_names() { return {"lenet300", "lenet5", "vgg"}; }

std::unique_ptr<Sequential> make_model(const std::string& name, uint64_t seed) {
  std::unique_ptr<Sequential> m;
  if (name == "lenet300") m = make_lenet300();
  else if (name == "lenet5") m = make_lenet5();
  else if (name == "vgg") m = make_vgg();
  else {
    std::string known;
    for (auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown model '" + name + "'; known models: " + known);
  }
  init_kaiming(*m, seed);
  return m;
}

}  // namespace effml
