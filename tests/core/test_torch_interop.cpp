// PyTorch interop, both ways, through scripts/torch_interop.py run by /usr/bin/python3:
// PyTorch loads the safetensors files and checkpoints this core writes (exact values, the same
// forward output), and this core loads PyTorch state_dicts (Linear MLP, Conv2d + BatchNorm2d)
// and reproduces PyTorch's forward output. Skipped (with a warning) only where /usr/bin/python3
// cannot import torch.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "effml/layers/activation.h"
#include "effml/layers/batchnorm2d.h"
#include "effml/layers/conv2d.h"
#include "effml/layers/flatten.h"
#include "effml/layers/linear.h"
#include "effml/rng.h"
#include "effml/safetensors.h"
#include "temp_dir.h"

using namespace effml;
namespace fs = std::filesystem;
using effml::testing::TempDir;

namespace {

const std::string kPython = "/usr/bin/python3";
const std::string kScript = std::string(EFFML_SOURCE_DIR) + "/scripts/torch_interop.py";

// Largest |effml - torch| accepted on a forward pass (the script uses the same bound).
// Measured here: 4.8e-7 (effml's MLP run by torch), 6.0e-8 (torch's MLP run by effml), 4.1e-8
// (torch's Conv2d + BatchNorm2d model run by effml): float32 sums taken in different orders.
constexpr float kForwardTolerance = 1e-5f;

bool torch_available() {
  static const bool ok =
      std::system((kPython + " -c 'import torch' > /dev/null 2>&1").c_str()) == 0;
  return ok;
}

// Runs the script with a command and a folder; returns its exit status and its output.
int run_script(const std::string& command, const TempDir& dir, std::string& output) {
  const std::string log = dir.file(command + ".log");
  const std::string cmd = kPython + " '" + kScript + "' " + command + " '" + dir.path.string() +
                          "' > '" + log + "' 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(log);
  output.assign(std::istreambuf_iterator<char>(in), {});
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The model an "arch" list describes (the same list the script turns into torch.nn layers).
std::unique_ptr<Sequential> build_model(const nlohmann::json& arch) {
  auto m = std::make_unique<Sequential>();
  for (const auto& spec : arch) {
    const std::string kind = spec[0];
    if (kind == "Linear") m->emplace<Linear>(spec[1].get<int64_t>(), spec[2].get<int64_t>());
    else if (kind == "ReLU") m->emplace<ReLU>();
    else if (kind == "Flatten") m->emplace<Flatten>();
    else if (kind == "Conv2d")
      m->emplace<Conv2d>(spec[1].get<int64_t>(), spec[2].get<int64_t>(), spec[3].get<int64_t>(),
                         spec[4].get<int64_t>(), spec[5].get<int64_t>());
    else if (kind == "BatchNorm2d") m->emplace<BatchNorm2d>(spec[1].get<int64_t>());
    else FAIL("unknown layer " << kind);
  }
  return m;
}

// {"dtype": "F32", "shape": [...], "values": [...]} for each tensor: the script's format.
nlohmann::json expectation(const std::vector<std::pair<std::string, const Tensor*>>& tensors) {
  nlohmann::json e = nlohmann::json::object();
  for (const auto& [name, t] : tensors) {
    nlohmann::json values = nlohmann::json::array();
    for (int64_t i = 0; i < t->numel(); ++i) {
      if (t->dtype() == DType::Float32) values.push_back(static_cast<double>((*t)[i]));
      else values.push_back(static_cast<int64_t>(t->item_at(i)));
    }
    e[name] = {{"dtype", safetensors_dtype_name(t->dtype())}, {"shape", t->shape()},
               {"values", values}};
  }
  return e;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  return (a - b).abs().max();
}

}  // namespace

TEST_CASE("torch interop: PyTorch reads what effml writes", "[safetensors][torch]") {
  if (!torch_available()) {
    WARN("skipped: " << kPython << " cannot import torch (apt-get install python3-torch)");
    return;
  }
  TempDir dir("torch");
  // Tensors of each dtype, with values that catch byte-order, sign and rounding mistakes.
  const Tensor f32({2, 3}, std::vector<float>{0.1f, -0.0f, 1e-38f, 3.0e38f, -1.5f, 16777217.0f});
  const Tensor i8 = Tensor::from_i8({2, 3}, {-128, -1, 0, 1, 64, 127});
  const Tensor i32 = Tensor::from_i32({4}, {INT32_MIN, -123456789, 0, INT32_MAX});
  const std::vector<std::pair<std::string, const Tensor*>> tensors{
      {"f32", &f32}, {"layer.q", &i8}, {"layer.acc", &i32}};
  save_safetensors(dir.file("cpp_dtypes.safetensors"), tensors,
                   {{"expect", expectation(tensors).dump()}});

  const nlohmann::json arch = nlohmann::json::parse(R"([["Linear", 6, 16], ["ReLU"], ["Linear", 16, 4]])");
  auto model = build_model(arch);
  Rng rng(11);
  for (auto& np : model->named_parameters())
    np.param->value = Tensor::randn(np.param->value.shape(), rng) * 0.5f;
  model->eval();
  const Tensor x = Tensor::randn({5, 6}, rng);
  const Tensor y = model->forward(x);
  save_checkpoint(dir.file("cpp_mlp.safetensors"), *model, {{"arch", arch.dump()}});
  save_safetensors(dir.file("cpp_mlp_io.safetensors"), {{"x", &x}, {"y", &y}});

  std::string output;
  const int rc = run_script("check-cpp", dir, output);
  INFO(output);
  CHECK(rc == 0);
  CHECK(output.find("forward max |diff|") != std::string::npos);
}

TEST_CASE("torch interop: effml loads PyTorch state_dicts", "[safetensors][torch]") {
  if (!torch_available()) {
    WARN("skipped: " << kPython << " cannot import torch (apt-get install python3-torch)");
    return;
  }
  // PyTorch writes its files once for all the sections below (each section reruns this body).
  static const TempDir dir("torch");
  static std::string output;
  static const int rc = run_script("write-torch", dir, output);
  INFO(output);
  REQUIRE(rc == 0);

  SECTION("every dtype, value for value") {
    const SafetensorsFile file = load_safetensors(dir.file("torch_dtypes.safetensors"));
    const nlohmann::json expect = nlohmann::json::parse(file.metadata.at("expect"));
    REQUIRE(file.tensors.size() == expect.size());
    for (const auto& [name, t] : file.tensors) {
      INFO("tensor " << name);
      REQUIRE(expect.contains(name));
      const auto& e = expect[name];
      CHECK(safetensors_dtype_name(t.dtype()) == e["dtype"].get<std::string>());
      CHECK(t.shape() == e["shape"].get<Shape>());
      const auto& values = e["values"];
      REQUIRE(static_cast<int64_t>(values.size()) == t.numel());
      for (int64_t i = 0; i < t.numel(); ++i) {
        if (t.dtype() == DType::Float32) {
          // Bit for bit (so -0.0 and 0.0 differ).
          const float want = static_cast<float>(values[static_cast<std::size_t>(i)].get<double>());
          CHECK(std::memcmp(&t.data()[i], &want, sizeof want) == 0);
        } else {
          CHECK(t.item_at(i) == values[static_cast<std::size_t>(i)].get<int64_t>());
        }
      }
    }
    CHECK(file.at("i8").dtype() == DType::Int8);
    CHECK(file.at("i32").data_i32()[0] == INT32_MIN);
  }

  for (const std::string stem : {"torch_mlp", "torch_conv_bn"}) {
    DYNAMIC_SECTION(stem << ": load_checkpoint and the same forward output") {
      const std::string path = dir.file(stem + ".safetensors");
      const nlohmann::json arch = nlohmann::json::parse(read_metadata(path).at("arch"));
      auto model = build_model(arch);
      load_checkpoint(path, *model);
      model->eval();
      const SafetensorsFile io = load_safetensors(dir.file(stem + "_io.safetensors"));
      const Tensor y = model->forward(io.at("x"));
      const float diff = max_abs_diff(y, io.at("y"));
      INFO(stem << ": max |effml - torch| = " << diff);
      CHECK(diff <= kForwardTolerance);
      // The outputs are not trivially small, so the bound means something.
      CHECK(io.at("y").abs().max() > 0.1f);
    }
  }

  SECTION("the batch-norm buffers came from PyTorch's training passes") {
    const SafetensorsFile file = load_safetensors(dir.file("torch_conv_bn.safetensors"));
    CHECK(file.at("1.num_batches_tracked").dtype() == DType::Int32);
    CHECK(file.at("1.num_batches_tracked").data_i32()[0] == 3);
    CHECK(file.at("1.running_mean").abs().max() > 0.0f);
  }
}
