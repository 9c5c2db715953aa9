#include "effml/models.h"

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
  const int64_t cfg[] = {16, 0, 32, 0, 64, 64, 0};
  auto m = std::make_unique<Sequential>();
  auto& f = m->emplace_named<Sequential>("features");
  int64_t channels = 1, size = 28;
  for (int64_t c : cfg) {
    if (c == 0) {
      f.emplace<MaxPool2d>(2);
      size /= 2;
      continue;
    }
    // No conv bias: the batch-norm shift that follows makes it redundant.
    f.emplace<Conv2d>(channels, c, 3, 1, 1, 1, false);
    f.emplace<BatchNorm2d>(c);
    f.emplace<ReLU>();
    channels = c;
  }
  m->emplace_named<Flatten>("flatten");
  m->emplace_named<Linear>("classifier", channels * size * size, 10);
  return m;
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
