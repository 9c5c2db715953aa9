// Lab 0 runner: the program the grader builds from this file, your lab0.cpp and the core, and
// runs as a child process, once per task. It calls your functions on the inputs it is given and
// writes what they return; it computes no score (the grader compares the outputs itself).
//
//   runner gen TASK SEED INPUTS.safetensors         random inputs for TASK from SEED
//   runner run TASK INPUTS.safetensors OUTPUTS.safetensors
//                                                   your functions on INPUTS, results to OUTPUTS
//   runner list                                     the task names, one per line
//
// For train_lenet300, `run` takes no inputs (pass `none`: the seed is fixed; a file written by
// `gen train_lenet300 SEED` trains from another seed) and writes the trained model's checkpoint
// to OUTPUTS; the grader loads it into the core's LeNet-300-100 and measures the test accuracy
// itself.
//
// Exit codes: 0 done, 1 error (message on stderr), 2 bad command line, 3 a function is not
// implemented yet (the message names its task).
//
// You can run it yourself, for example:
//   runner gen linear_forward 7 in.safetensors && runner run linear_forward in.safetensors out.safetensors

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "effml/data.h"
#include "effml/error.h"
#include "effml/rng.h"
#include "effml/safetensors.h"
#include "effml/lab_runner.h"
#include "effml/tensor.h"
#include "lab0.h"
#include "student_model.h"

namespace {

using effml::Rng;
using effml::Shape;
using effml::Tensor;
using effml::TensorList;
using effml::awkward_size;
using effml::normal;
using effml::size_between;
using Metadata = std::map<std::string, std::string>;


// ---- random inputs -------------------------------------------------------------------------------




// Normal samples of which about one in eight is exactly zero (where ReLU has no derivative).
Tensor normal_with_zeros(const Shape& shape, Rng& rng) {
  Tensor t = Tensor::randn(shape, rng);
  for (int64_t k = 0; k < t.numel(); ++k) {
    if (rng.randint(8) == 0) t[k] = 0.0f;
  }
  return t;
}


// N labels in [0, C) as an int32 tensor.
Tensor random_labels(int64_t n, int64_t c, Rng& rng) {
  std::vector<int32_t> values(static_cast<std::size_t>(n));
  for (auto& v : values) v = static_cast<int32_t>(rng.randint(static_cast<uint64_t>(c)));
  return Tensor::from_i32({n}, values);
}

// x (N, I), weight (O, I) and bias (O), scaled as in a trained layer: W with std 1/sqrt(I) keeps
// the outputs of order 1 whatever I is.
TensorList linear_inputs(int64_t n, int64_t in, int64_t out, Rng& rng) {
  TensorList t;
  t.emplace_back("x", normal({n, in}, 1.0f, rng));
  t.emplace_back("weight", normal({out, in}, 1.0f / std::sqrt(static_cast<float>(in)), rng));
  t.emplace_back("bias", normal({out}, 0.1f, rng));
  return t;
}

TensorList gen_linear_forward(Rng& rng) {
  const int64_t n = awkward_size(rng), in = awkward_size(rng), out = awkward_size(rng);
  return linear_inputs(n, in, out, rng);
}

TensorList gen_linear_forward_large(Rng& rng) {
  const int64_t n = size_between(rng, 33, 128);
  const int64_t in = size_between(rng, 100, 784);
  const int64_t out = size_between(rng, 10, 300);
  return linear_inputs(n, in, out, rng);
}

TensorList linear_backward_inputs(int64_t n, int64_t in, int64_t out, Rng& rng) {
  TensorList t = linear_inputs(n, in, out, rng);
  t.erase(t.begin() + 2);  // no bias: it does not enter the gradients
  t.insert(t.begin(), std::make_pair(std::string("dy"), normal({n, out}, 1.0f, rng)));
  return t;
}

TensorList gen_linear_backward(Rng& rng) {
  const int64_t n = awkward_size(rng), in = awkward_size(rng), out = awkward_size(rng);
  return linear_backward_inputs(n, in, out, rng);
}

TensorList gen_linear_backward_large(Rng& rng) {
  const int64_t n = size_between(rng, 33, 128);
  const int64_t in = size_between(rng, 100, 784);
  const int64_t out = size_between(rng, 10, 300);
  return linear_backward_inputs(n, in, out, rng);
}

TensorList gen_relu_backward(Rng& rng) {
  const Shape shape = {awkward_size(rng), awkward_size(rng)};
  TensorList t;
  t.emplace_back("dy", normal(shape, 1.0f, rng));
  t.emplace_back("x", normal_with_zeros(shape, rng));
  return t;
}

TensorList gen_relu_backward_4d(Rng& rng) {
  const Shape shape = {awkward_size(rng), awkward_size(rng), size_between(rng, 1, 12),
                       size_between(rng, 1, 12)};
  TensorList t;
  t.emplace_back("dy", normal(shape, 1.0f, rng));
  t.emplace_back("x", normal_with_zeros(shape, rng));
  return t;
}

// Logits of a classifier with spread `std` around `offset`, and labels.
TensorList loss_inputs(int64_t n, int64_t c, float std, float offset, Rng& rng) {
  TensorList t;
  Tensor logits = normal({n, c}, std, rng);
  for (int64_t k = 0; k < logits.numel(); ++k) logits[k] += offset;
  t.emplace_back("logits", std::move(logits));
  t.emplace_back("labels", random_labels(n, c, rng));
  return t;
}

TensorList gen_loss(Rng& rng) {
  const int64_t n = awkward_size(rng), c = awkward_size(rng);
  return loss_inputs(n, c, 3.0f, 0.0f, rng);
}

// Logits in the hundreds and thousands: exp() of them overflows float32 unless each row's
// maximum is subtracted first.
TensorList gen_loss_large_logits(Rng& rng) {
  const int64_t n = awkward_size(rng), c = size_between(rng, 2, 20);
  return loss_inputs(n, c, 300.0f, 500.0f, rng);
}

// Hyper-parameters drawn from the ranges people use.
void sgd_hyper_parameters(TensorList& t, Rng& rng) {
  const float momenta[] = {0.0f, 0.5f, 0.9f, 0.99f};
  const float decays[] = {0.0f, 1e-4f, 5e-4f, 1e-2f};
  t.emplace_back("lr", effml::scalar_tensor(rng.uniform(0.001f, 0.5f)));
  t.emplace_back("momentum", effml::scalar_tensor(momenta[rng.randint(4)]));
  t.emplace_back("weight_decay", effml::scalar_tensor(decays[rng.randint(4)]));
}

// One step from the middle of a run: the velocity is not zero.
TensorList gen_sgd(Rng& rng) {
  const Shape shape = {awkward_size(rng), awkward_size(rng)};
  TensorList t;
  t.emplace_back("weight", normal(shape, 1.0f, rng));
  t.emplace_back("grad", normal(shape, 0.1f, rng));
  t.emplace_back("velocity", normal(shape, 0.1f, rng));
  sgd_hyper_parameters(t, rng);
  return t;
}

// Several steps from the start of a run: the velocity starts at zero; grads (K, shape...) holds
// the gradient of each step.
TensorList gen_sgd_steps(Rng& rng) {
  const int64_t steps = size_between(rng, 2, 6);
  const int64_t rows = awkward_size(rng), cols = awkward_size(rng);
  TensorList t;
  t.emplace_back("weight", normal({rows, cols}, 1.0f, rng));
  t.emplace_back("grads", normal({steps, rows, cols}, 0.1f, rng));
  t.emplace_back("velocity", Tensor({rows, cols}));
  sgd_hyper_parameters(t, rng);
  return t;
}

// ---- calling the student's functions ---------------------------------------------------------


TensorList run_linear_forward(const effml::RunnerInputs& in) {
  return {{"y", lab0::linear_forward(in.at("x"), in.at("weight"), in.at("bias"))}};
}

TensorList run_linear_backward(const effml::RunnerInputs& in) {
  lab0::LinearGrads g = lab0::linear_backward(in.at("dy"), in.at("x"), in.at("weight"));
  return {{"dx", std::move(g.dx)}, {"dweight", std::move(g.dweight)}, {"dbias", std::move(g.dbias)}};
}

TensorList run_relu_backward(const effml::RunnerInputs& in) {
  return {{"dx", lab0::relu_backward(in.at("dy"), in.at("x"))}};
}

TensorList run_loss_forward(const effml::RunnerInputs& in) {
  const float loss = lab0::softmax_cross_entropy_forward(in.at("logits"), in.ints("labels"));
  return {{"loss", effml::scalar_tensor(loss)}};
}

TensorList run_loss_backward(const effml::RunnerInputs& in) {
  return {{"dlogits",
           lab0::softmax_cross_entropy_backward(in.at("logits"), in.ints("labels"))}};
}

TensorList run_loss_both(const effml::RunnerInputs& in) {
  TensorList out = run_loss_forward(in);
  TensorList grad = run_loss_backward(in);
  out.push_back(std::move(grad[0]));
  return out;
}

TensorList run_sgd(const effml::RunnerInputs& in) {
  Tensor weight = in.at("weight");
  Tensor velocity = in.at("velocity");
  lab0::sgd_momentum_step(weight, in.at("grad"), velocity, in.scalar("lr"), in.scalar("momentum"),
                          in.scalar("weight_decay"));
  return {{"weight", std::move(weight)}, {"velocity", std::move(velocity)}};
}

TensorList run_sgd_steps(const effml::RunnerInputs& in) {
  Tensor weight = in.at("weight");
  Tensor velocity = in.at("velocity");
  const Tensor& grads = in.at("grads");
  EFFML_CHECK(grads.dim() == 3 && grads.size(1) == weight.size(0) && grads.size(2) == weight.size(1),
              "grads " << grads.shape_str() << " must be (K, " << weight.size(0) << ", "
                       << weight.size(1) << ")");
  for (int64_t k = 0; k < grads.size(0); ++k) {
    Tensor grad = grads.narrow(k, 1).reshape(weight.shape());
    lab0::sgd_momentum_step(weight, grad, velocity, in.scalar("lr"), in.scalar("momentum"),
                            in.scalar("weight_decay"));
  }
  return {{"weight", std::move(weight)}, {"velocity", std::move(velocity)}};
}

// ---- Task 7: training ----------------------------------------------------------------------

// Task 7 trains with StudentTrainConfig's defaults (3 epochs, batch 64, SGD with momentum 0.9,
// learning rate 0.01 with cosine decay, weight decay 5e-4) from this seed (initial weights and
// shuffling). The grader always runs it with inputs `none`, so with this seed; `gen` writes a
// file holding another seed, which is how the accuracy threshold was calibrated over seeds.
constexpr int32_t kTrainSeed = 0;

TensorList gen_train(uint64_t seed) {
  EFFML_CHECK(seed <= 0x7fffffffu, "train_lenet300: the seed must be below 2^31, got " << seed);
  return {{"seed", Tensor::from_i32({}, {static_cast<int32_t>(seed)})}};
}

void run_train(const std::string& in_path, const std::string& out_path) {
  int32_t seed = kTrainSeed;
  if (in_path != "none") {
    const effml::RunnerInputs inputs(in_path);
    const Tensor& t = inputs.at("seed");
    EFFML_CHECK(t.dtype() == effml::DType::Int32 && t.numel() == 1,
                in_path << ": 'seed' must be one int32");
    seed = t.data_i32()[0];
  }
  const effml::Dataset train_set = effml::load_fashion_mnist("train");
  lab0::StudentTrainConfig config;
  config.seed = static_cast<uint64_t>(seed);
  auto model = lab0::make_student_lenet300(config.seed);
  const auto start = std::chrono::steady_clock::now();
  // No evaluation between epochs: it would run your forward on 10,000 more images each time.
  const auto history = lab0::train_student_model(*model, train_set, nullptr, config);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Metadata meta = {
      {"model", "lenet300"},
      {"dataset", "fashion-mnist"},
      {"lab", "lab0_tensor"},
      {"task", "train_lenet300"},
      {"epochs", std::to_string(config.epochs)},
      {"batch_size", std::to_string(config.batch_size)},
      {"lr", std::to_string(config.lr)},
      {"momentum", std::to_string(config.momentum)},
      {"weight_decay", std::to_string(config.weight_decay)},
      {"seed", std::to_string(seed)},
      {"train_seconds", std::to_string(seconds)},
      {"train_loss", std::to_string(history.back().train_loss)},
      {"train_accuracy", std::to_string(history.back().train_accuracy)}};
  effml::save_checkpoint(out_path, *model, meta);
  std::printf("trained LeNet-300-100 in %.1f s: last epoch's training loss %.4f, accuracy %.2f%%\n",
              seconds, history.back().train_loss, 100.0 * history.back().train_accuracy);
  std::printf("the grader measures the test accuracy of %s itself (`effml eval %s` does the same)\n",
              out_path.c_str(), out_path.c_str());
}

// ---- the task table ------------------------------------------------------------------------

const std::map<std::string, effml::RunnerTask>& tasks() {
  static const std::map<std::string, effml::RunnerTask> table = {
      {"linear_forward", {gen_linear_forward, run_linear_forward, nullptr, nullptr}},
      {"linear_forward_large", {gen_linear_forward_large, run_linear_forward, nullptr, nullptr}},
      {"linear_backward", {gen_linear_backward, run_linear_backward, nullptr, nullptr}},
      {"linear_backward_large", {gen_linear_backward_large, run_linear_backward, nullptr, nullptr}},
      {"relu_backward", {gen_relu_backward, run_relu_backward, nullptr, nullptr}},
      {"relu_backward_4d", {gen_relu_backward_4d, run_relu_backward, nullptr, nullptr}},
      {"softmax_cross_entropy_forward", {gen_loss, run_loss_forward, nullptr, nullptr}},
      {"softmax_cross_entropy_backward", {gen_loss, run_loss_backward, nullptr, nullptr}},
      {"softmax_cross_entropy_large_logits", {gen_loss_large_logits, run_loss_both, nullptr, nullptr}},
      {"sgd_momentum_step", {gen_sgd, run_sgd, nullptr, nullptr}},
      {"sgd_momentum_steps", {gen_sgd_steps, run_sgd_steps, nullptr, nullptr}},
      {"train_lenet300", {nullptr, nullptr, run_train, gen_train}},
  };
  return table;
}

}  // namespace

int main(int argc, char** argv) { return effml::run_lab_runner(argc, argv, "lab0_tensor", tasks()); }
