// Golden values: the core's layers, loss and optimizers against what PyTorch computes.
//
// tests/fixtures/golden_v1.safetensors is written by scripts/make_golden.py (torch autograd in
// float32). For every case it holds the inputs, the parameters, an upstream gradient dy, and
// torch's outputs and gradients; the file's metadata gives each case's hyper-parameters as JSON
// with an "op" field. Each test below builds the core's layer from those hyper-parameters, copies
// the parameters in, runs forward and backward with the given dy, and compares every output and
// gradient with torch's. Cases are found through the metadata, so a case added to the script is
// tested without changing this file.
//
// Tolerance: |got - expected| <= atol + rtol * |expected| with rtol = 1e-4, atol = 1e-5.
// Both sides compute in float32 (unit round-off 6e-8) but sum in different orders (im2col and
// Eigen's blocked products here, PyTorch's own kernels there), so each result carries a rounding
// error of a few units in the last place of its largest partial sums; the longest sums here have
// about 125 terms (Conv2d with K = 5) and reach magnitudes of about 30. Measured against this
// file (torch 1.13, GCC 12, -march=native, 1 and 2 threads; run with EFFML_GOLDEN_REPORT=1 to
// print the figures): largest absolute error 9.5e-6 (conv2d_nobias_k5_pad2.dweight, values up
// to about 27), largest relative error 9.6e-5 on an element of magnitude below 0.02
// (conv2d_stride1_pad0.dweight), and at most 0.078 of the tolerance on any element of the 68
// compared tensors; batch norm, cross-entropy and the optimizers stay below 0.01 of it. So the
// bound leaves a margin of more than 10x for other compilers and summation orders, while an
// indexing mistake changes values by whole units and a wrong constant (eps, momentum, bias
// correction, weight decay) changes them by far more than 1e-4 relative. atol covers results
// that cancel to near zero (the e^-80 probabilities of the cross-entropy case, sums of dy of
// both signs), where a relative bound alone would demand more than float32 can give.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "effml/layers.h"
#include "effml/loss.h"
#include "effml/optim.h"
#include "effml/safetensors.h"

using namespace effml;
using json = nlohmann::json;

namespace {

constexpr float kRtol = 1e-4f;
constexpr float kAtol = 1e-5f;
constexpr const char* kGoldenVersion = "1";
const std::string kGoldenPath = std::string(EFFML_FIXTURES_DIR) + "/golden_v1.safetensors";

/// The fixture file, read once and checked to be the version this file understands.
const SafetensorsFile& golden() {
  static const SafetensorsFile file = [] {
    SafetensorsFile f = load_safetensors(kGoldenPath);
    const auto format = f.metadata.find("format");
    const auto version = f.metadata.find("version");
    EFFML_CHECK(format != f.metadata.end() && format->second == "effml-golden",
                kGoldenPath << " is not an effml golden file (metadata \"format\" is missing or "
                            << "not \"effml-golden\"); regenerate it with "
                            << "`/usr/bin/python3 scripts/make_golden.py`");
    EFFML_CHECK(version != f.metadata.end() && version->second == kGoldenVersion,
                kGoldenPath << " has version \""
                            << (version == f.metadata.end() ? "(none)" : version->second)
                            << "\" but this test reads version \"" << kGoldenVersion
                            << "\"; regenerate it with `/usr/bin/python3 scripts/make_golden.py` "
                            << "or update tests/core/test_golden.cpp to the new version");
    return f;
  }();
  return file;
}

/// The cases whose metadata says "op": `op`, as (case name, hyper-parameters), in name order.
/// Fails the test when there are fewer than `at_least`, so a truncated file cannot pass.
std::vector<std::pair<std::string, json>> cases_of(const std::string& op, std::size_t at_least) {
  std::vector<std::pair<std::string, json>> out;
  for (const auto& [key, value] : golden().metadata) {
    if (key == "format" || key == "version" || key == "torch" || key == "generator") continue;
    json params = json::parse(value);
    if (params.value("op", "") == op) out.emplace_back(key, std::move(params));
  }
  INFO("golden file " << kGoldenPath << ", op " << op);
  REQUIRE(out.size() >= at_least);
  return out;
}

/// The golden tensor "<case_name>.<tensor>".
const Tensor& ref(const std::string& case_name, const std::string& tensor) {
  return golden().at(case_name + "." + tensor);
}

/// "(1, 0, 2)": the multi-index of flat index `i` in `shape`.
std::string index_str(int64_t i, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] == 0 ? 0 : i % shape[d];
    i = shape[d] == 0 ? 0 : i / shape[d];
  }
  std::ostringstream os;
  os << "(";
  for (std::size_t d = 0; d < idx.size(); ++d) os << (d ? ", " : "") << idx[d];
  os << ")";
  return os.str();
}

/// Empty when `got` matches `expected` (same shape and dtype, every element within
/// atol + rtol * |expected|, NaN never matching); otherwise a message naming the case, the
/// tensor, the shapes, the first differing flat index (and its multi-index), expected and got,
/// how many elements differ and the largest difference.
std::string mismatch(const std::string& case_name, const std::string& tensor,
                     const Tensor& expected, const Tensor& got, float rtol = kRtol,
                     float atol = kAtol) {
  std::ostringstream os;
  os.precision(9);
  const std::string what = case_name + "." + tensor;
  if (got.shape() != expected.shape() || got.dtype() != expected.dtype()) {
    os << what << ": expected shape " << expected.shape_str() << " " << dtype_name(expected.dtype())
       << ", got " << got.shape_str() << " " << dtype_name(got.dtype());
    return os.str();
  }
  int64_t first = -1, count = 0;
  double worst = 0.0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    const double e = expected.item_at(i), g = got.item_at(i);
    const double diff = std::fabs(g - e);
    if (!(diff <= atol + rtol * std::fabs(e))) {
      if (first < 0) first = i;
      ++count;
      if (!(diff <= worst)) worst = diff;
    }
  }
  if (first < 0) return "";
  std::ostringstream tol;  // default precision: "1e-05", not "9.99999975e-06"
  tol << atol << " + " << rtol << " * |expected|";
  os << what << " (shape " << expected.shape_str() << "): " << count << " of " << expected.numel()
     << " elements differ beyond " << tol.str() << "; first at flat index "
     << first << " " << index_str(first, expected.shape()) << ": expected "
     << expected.item_at(first) << ", got " << got.item_at(first) << "; largest difference "
     << worst;
  return os.str();
}

/// Records a Catch2 check: passes when `got` matches `expected`, else fails with the message of
/// `mismatch`. With EFFML_GOLDEN_REPORT set in the environment it also prints the largest
/// absolute and relative error, the figures the tolerance above was chosen from.
void check_close(const std::string& case_name, const std::string& tensor, const Tensor& expected,
                 const Tensor& got) {
  const std::string msg = mismatch(case_name, tensor, expected, got);
  if (std::getenv("EFFML_GOLDEN_REPORT") != nullptr && got.shape() == expected.shape()) {
    double max_abs = 0.0, max_rel = 0.0, max_used = 0.0;
    for (int64_t i = 0; i < expected.numel(); ++i) {
      const double e = expected.item_at(i), d = std::fabs(got.item_at(i) - e);
      max_abs = std::max(max_abs, d);
      if (std::fabs(e) > 1e-3) max_rel = std::max(max_rel, d / std::fabs(e));
      max_used = std::max(max_used, d / (kAtol + kRtol * std::fabs(e)));
    }
    std::cout << "golden " << case_name << "." << tensor << ": max abs error " << max_abs
              << ", max rel error (|expected| > 1e-3) " << max_rel
              << ", largest error / tolerance " << max_used << "\n";
  }
  if (msg.empty()) {
    SUCCEED(case_name << "." << tensor << " matches");
  } else {
    FAIL_CHECK(msg);
  }
}

/// Runs one case and turns an exception (a layer rejecting the case's shapes, say) into a failed
/// check naming the case, so the other cases of the same op still run.
template <typename Fn>
void run_case(const std::string& case_name, const json& params, Fn&& fn) {
  INFO("golden case " << case_name << " " << params.dump());
  try {
    fn();
  } catch (const std::exception& e) {
    FAIL_CHECK(case_name << ": threw " << e.what());
  }
}

/// One trainable tensor, so the optimizers can be driven directly.
struct OneParameter : Module {
  Parameter p;
  explicit OneParameter(const Tensor& value) : p(value) {}
  Tensor forward(const Tensor& x) override { return x; }
  Tensor backward(const Tensor& dy) override { return dy; }
  std::string describe() const override { return "OneParameter()"; }
  Shape output_shape(const Shape& in) const override { return in; }
  std::vector<std::pair<std::string, Parameter*>> local_parameters() override {
    return {{"p", &p}};
  }
};

/// Forward with x, compare y, backward with dy, compare dx; for layers without parameters.
void check_parameterless(Module& layer, const std::string& name) {
  layer.train();
  check_close(name, "y", ref(name, "y"), layer.forward(ref(name, "x")));
  check_close(name, "dx", ref(name, "dx"), layer.backward(ref(name, "dy")));
}

/// Steps `opt` once per golden gradient g1, g2, ... and compares the parameter after each step
/// with p1, p2, ...
void check_steps(const std::string& name, const json& params, OneParameter& m, Optimizer& opt) {
  const int steps = params.at("steps").get<int>();
  for (int t = 1; t <= steps; ++t) {
    m.p.grad.copy_(ref(name, "g" + std::to_string(t)));
    opt.step();
    check_close(name, "p" + std::to_string(t), ref(name, "p" + std::to_string(t)), m.p.value);
  }
}

}  // namespace

TEST_CASE("golden: the fixture file is the version this test reads", "[golden]") {
  // golden() throws, naming the file and the regeneration command, on a wrong version.
  const SafetensorsFile& f = golden();
  CHECK(f.metadata.at("version") == kGoldenVersion);
  CHECK(f.metadata.at("generator") == "scripts/make_golden.py");
  CHECK(f.tensors.size() >= 100);
}

TEST_CASE("golden: Conv2d matches torch.nn.functional.conv2d", "[golden][conv2d]") {
  // stride 1/2/3, padding 0/1/2, groups 1/2, depthwise, K = 1/2/3/5, with and without bias.
  for (const auto& [name, p] : cases_of("conv2d", 5)) {
    run_case(name, p, [&, &name = name, &p = p] {
      const bool bias = p.at("bias").get<bool>();
      Conv2d conv(p.at("in_channels").get<int64_t>(), p.at("out_channels").get<int64_t>(),
                  p.at("kernel_size").get<int64_t>(), p.at("stride").get<int64_t>(),
                  p.at("padding").get<int64_t>(), p.at("groups").get<int64_t>(), bias);
      conv.weight.value.copy_(ref(name, "weight"));
      if (bias) conv.bias.value.copy_(ref(name, "bias"));
      conv.train();
      check_close(name, "y", ref(name, "y"), conv.forward(ref(name, "x")));
      check_close(name, "dx", ref(name, "dx"), conv.backward(ref(name, "dy")));
      check_close(name, "dweight", ref(name, "dweight"), conv.weight.grad);
      if (bias) check_close(name, "dbias", ref(name, "dbias"), conv.bias.grad);
    });
  }
}

TEST_CASE("golden: MaxPool2d matches torch.nn.functional.max_pool2d", "[golden][max_pool2d]") {
  for (const auto& [name, p] : cases_of("max_pool2d", 2)) {
    run_case(name, p, [&, &name = name, &p = p] {
      MaxPool2d pool(p.at("kernel_size").get<int64_t>(), p.at("stride").get<int64_t>(),
                     p.at("padding").get<int64_t>());
      check_parameterless(pool, name);
    });
  }
}

TEST_CASE("golden: AvgPool2d matches torch.nn.functional.avg_pool2d", "[golden][avg_pool2d]") {
  for (const auto& [name, p] : cases_of("avg_pool2d", 2)) {
    run_case(name, p, [&, &name = name, &p = p] {
      // The layer always counts the padding, as torch's default.
      REQUIRE(p.at("count_include_pad").get<bool>());
      AvgPool2d pool(p.at("kernel_size").get<int64_t>(), p.at("stride").get<int64_t>(),
                     p.at("padding").get<int64_t>());
      check_parameterless(pool, name);
    });
  }
}

TEST_CASE("golden: GlobalAvgPool2d matches adaptive_avg_pool2d(1) + flatten",
          "[golden][global_avg_pool2d]") {
  for (const auto& [name, p] : cases_of("global_avg_pool2d", 1)) {
    run_case(name, p, [&, &name = name] {
      GlobalAvgPool2d pool;
      check_parameterless(pool, name);
    });
  }
}

TEST_CASE("golden: ReLU matches torch.nn.functional.relu", "[golden][relu]") {
  for (const auto& [name, p] : cases_of("relu", 1)) {
    run_case(name, p, [&, &name = name] {
      ReLU relu;
      check_parameterless(relu, name);
    });
  }
}

TEST_CASE("golden: BatchNorm2d matches torch.nn.functional.batch_norm",
          "[golden][batch_norm2d]") {
  // One training-mode case (batch statistics, running statistics after one step from 0 and 1)
  // and one evaluation-mode case (given running statistics, which must stay as they are).
  const auto cases = cases_of("batch_norm2d", 2);
  int n_train = 0, n_eval = 0;
  for (const auto& [name, p] : cases) {
    const bool training = p.at("training").get<bool>();
    (training ? n_train : n_eval) += 1;
    run_case(name, p, [&, &name = name, &p = p] {
      const int64_t c = p.at("num_features").get<int64_t>();
      BatchNorm2d bn(c, p.at("eps").get<float>(), p.at("momentum").get<float>());
      bn.weight.value.copy_(ref(name, "weight"));
      bn.bias.value.copy_(ref(name, "bias"));
      if (training) {
        bn.running_mean.fill_(p.at("running_mean_init").get<float>());
        bn.running_var.fill_(p.at("running_var_init").get<float>());
        bn.train();
      } else {
        bn.running_mean.copy_(ref(name, "running_mean"));
        bn.running_var.copy_(ref(name, "running_var"));
        bn.eval();
      }
      check_close(name, "y", ref(name, "y"), bn.forward(ref(name, "x")));
      check_close(name, "dx", ref(name, "dx"), bn.backward(ref(name, "dy")));
      check_close(name, "dweight", ref(name, "dweight"), bn.weight.grad);
      check_close(name, "dbias", ref(name, "dbias"), bn.bias.grad);
      check_close(name, "running_mean", ref(name, "running_mean"), bn.running_mean);
      check_close(name, "running_var", ref(name, "running_var"), bn.running_var);
    });
  }
  CHECK(n_train >= 1);
  CHECK(n_eval >= 1);
}

TEST_CASE("golden: Linear matches torch.nn.functional.linear", "[golden][linear]") {
  for (const auto& [name, p] : cases_of("linear", 1)) {
    run_case(name, p, [&, &name = name, &p = p] {
      const bool bias = p.at("bias").get<bool>();
      Linear fc(p.at("in_features").get<int64_t>(), p.at("out_features").get<int64_t>(), bias);
      fc.weight.value.copy_(ref(name, "weight"));
      if (bias) fc.bias.value.copy_(ref(name, "bias"));
      fc.train();
      check_close(name, "y", ref(name, "y"), fc.forward(ref(name, "x")));
      check_close(name, "dx", ref(name, "dx"), fc.backward(ref(name, "dy")));
      check_close(name, "dweight", ref(name, "dweight"), fc.weight.grad);
      if (bias) check_close(name, "dbias", ref(name, "dbias"), fc.bias.grad);
    });
  }
}

TEST_CASE("golden: SoftmaxCrossEntropy matches torch.nn.functional.cross_entropy",
          "[golden][cross_entropy]") {
  // The logits include 80 and 90 next to small values and a row of near-equal values around 80,
  // which overflow exp() in float32 unless each row's maximum is subtracted first.
  for (const auto& [name, p] : cases_of("cross_entropy", 1)) {
    run_case(name, p, [&, &name = name] {
      const Tensor& labels_t = ref(name, "labels");
      const std::vector<int32_t> labels(labels_t.data_i32(),
                                        labels_t.data_i32() + labels_t.numel());
      SoftmaxCrossEntropy ce;
      const float loss = ce.forward(ref(name, "logits"), labels);
      check_close(name, "loss", ref(name, "loss"), Tensor({1}, std::vector<float>{loss}));
      check_close(name, "dlogits", ref(name, "dlogits"), ce.backward());
    });
  }
}

TEST_CASE("golden: Adam matches torch.optim.Adam over three steps", "[golden][adam]") {
  for (const auto& [name, p] : cases_of("adam", 1)) {
    run_case(name, p, [&, &name = name, &p = p] {
      OneParameter m(ref(name, "p0"));
      Adam opt(m.named_parameters(), p.at("lr").get<float>(), p.at("beta1").get<float>(),
               p.at("beta2").get<float>(), p.at("eps").get<float>(),
               p.at("weight_decay").get<float>());
      check_steps(name, p, m, opt);
    });
  }
}

TEST_CASE("golden: SGD matches torch.optim.SGD over three steps", "[golden][sgd]") {
  // Momentum with weight decay, plain and Nesterov.
  for (const auto& [name, p] : cases_of("sgd", 1)) {
    run_case(name, p, [&, &name = name, &p = p] {
      OneParameter m(ref(name, "p0"));
      SGD opt(m.named_parameters(), p.at("lr").get<float>(), p.at("momentum").get<float>(),
              p.at("weight_decay").get<float>(), p.at("nesterov").get<bool>());
      check_steps(name, p, m, opt);
    });
  }
}

TEST_CASE("golden: a mismatch names the case, tensor, index, values and shape", "[golden]") {
  // The comparison itself must be able to fail, and say where.
  const Tensor expected({2, 3}, std::vector<float>{0.f, 1.f, 2.f, 3.f, 4.f, 5.f});
  Tensor got = expected;
  CHECK(mismatch("case", "dx", expected, got).empty());
  got[4] = 4.01f;
  const std::string msg = mismatch("case", "dx", expected, got);
  CHECK_THAT(msg, Catch::Contains("case.dx"));
  CHECK_THAT(msg, Catch::Contains("flat index 4 (1, 1)"));
  CHECK_THAT(msg, Catch::Contains("expected 4, got 4.01"));
  CHECK_THAT(msg, Catch::Contains("(2, 3)"));
  got[4] = std::nanf("");
  CHECK_FALSE(mismatch("case", "dx", expected, got).empty());
  CHECK_THAT(mismatch("case", "dx", expected, Tensor({3, 2})),
             Catch::Contains("expected shape (2, 3) float32, got (3, 2) float32"));
}
