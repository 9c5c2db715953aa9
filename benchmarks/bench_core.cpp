// bench_core: how fast the core trains and runs one of the course's models.
//
// For a model, a batch size and a thread count it measures
//  (a) the training time on Fashion-MNIST's training images through effml::train, the loop that
//      `effml train` runs (SGD with momentum, constant learning rate, no progress bar), after a
//      warm-up of a few batches that is not timed. `--images N` times the first N images only and
//      scales the time to the 60,000 images of an epoch, so a run stays short;
//  (b) the latency of one image (batch 1) in evaluation mode: effml::measure_latency, the median
//      of many repeats after untimed warm-up calls.
// It prints one JSON object on stdout. benchmarks/bench_torch.py measures the same in PyTorch and
// benchmarks/run.sh runs both, interleaved, and prints the comparison.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "effml/data.h"
#include "effml/error.h"
#include "effml/metrics.h"
#include "effml/models.h"
#include "effml/parallel.h"
#include "effml/train.h"

#ifndef EFFML_BENCH_EIGEN_BLAS
#define EFFML_BENCH_EIGEN_BLAS 0
#endif

namespace {

struct Options {
  std::string model = "lenet300";
  int64_t batch_size = 64;
  int threads = 1;
  int64_t images = 0;          // 0: the whole training set
  int64_t warmup_batches = 5;  // trained before the timed part, not timed
  int latency_warmup = 50;
  int latency_repeats = 500;
  float lr = 0.05f;
  float momentum = 0.9f;
  float weight_decay = 5e-4f;  // `effml train`'s default
  uint64_t seed = 0;
  bool skip_train = false;
  bool skip_latency = false;
};

/// A float option as the decimal the user typed (0.05, not 0.05000000074505806) for the report.
double as_decimal(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
  return std::stod(buf);
}

/// CPU time of the whole process (all threads, user + system) so far, in seconds. Next to the
/// wall time it tells how much of a run was spent waiting for a busy machine.
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

/// Trains one pass over the first `opt.images` images (after the warm-up) and returns its
/// figures. The timed seconds are effml::train's own wall time of the training part.
nlohmann::json bench_train(effml::Module& model, const effml::Dataset& all, const Options& opt) {
  const int64_t n = opt.images > 0 ? std::min(opt.images, all.size()) : all.size();
  effml::TrainConfig cfg;
  cfg.epochs = 1;
  cfg.batch_size = opt.batch_size;
  cfg.optimizer = "sgd";
  cfg.lr = opt.lr;
  cfg.momentum = opt.momentum;
  cfg.weight_decay = opt.weight_decay;
  cfg.schedule = "constant";
  cfg.seed = opt.seed;
  cfg.progress = false;

  // Warm-up: first-touch page faults, thread-pool start-up and the allocator's first large
  // blocks land here instead of in the timed pass.
  const int64_t warm = std::min(all.size(), opt.warmup_batches * opt.batch_size);
  if (warm > 0) effml::train(model, all.subset(0, warm), nullptr, cfg);

  // The prefix is copied once, outside the timing; the whole set is used in place.
  effml::Dataset prefix;
  if (n < all.size()) prefix = all.subset(0, n);
  const effml::Dataset& data = n < all.size() ? prefix : all;
  const double cpu0 = process_cpu_seconds();
  const auto history = effml::train(model, data, nullptr, cfg);
  const double cpu = process_cpu_seconds() - cpu0;
  EFFML_CHECK(history.size() == 1, "bench_core: expected one epoch of history, got "
                                       << history.size());
  const double s = history.front().seconds;
  const double epoch_images = static_cast<double>(all.size());
  return {{"images_timed", n},
          {"epoch_images", all.size()},
          {"warmup_images", warm},
          {"seconds_timed", s},
          {"cpu_seconds_timed", cpu},
          {"seconds_per_epoch", s * epoch_images / static_cast<double>(n)},
          {"images_per_second", static_cast<double>(n) / s},
          {"train_loss", history.front().train_loss},
          {"train_accuracy", history.front().train_accuracy}};
}

/// Median latency of one image's forward pass in evaluation mode.
nlohmann::json bench_latency(effml::Module& model, const effml::Dataset& all, const Options& opt) {
  model.eval();
  const effml::Tensor one = all.images.narrow(0, 1);  // (1, 1, 28, 28)
  const effml::LatencyStats st = effml::measure_latency([&] { model.forward(one); },
                                                        opt.latency_warmup, opt.latency_repeats);
  model.train();
  return {{"median_ms", st.median_ms}, {"min_ms", st.min_ms}, {"p90_ms", st.p90_ms},
          {"repeats", st.repeats},     {"warmup", opt.latency_warmup}};
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{
      "bench_core: training time per epoch and batch-1 latency of a model in the effml core.\n"
      "Prints JSON. Compare with benchmarks/bench_torch.py, or run benchmarks/run.sh.",
      "bench_core"};
  app.add_option("model", opt.model, "lenet300, lenet5 or vgg")
      ->check(CLI::IsMember(effml::model_names()))
      ->capture_default_str();
  app.add_option("--batch-size,-b", opt.batch_size, "Images per optimizer step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--threads,-t", opt.threads, "Threads of the core's parallel loops")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--images", opt.images,
                 "Time the first N training images and scale to the epoch (0 = all 60,000)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--warmup-batches", opt.warmup_batches, "Untimed training batches first")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--latency-warmup", opt.latency_warmup, "Untimed batch-1 forward passes")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--latency-repeats", opt.latency_repeats, "Timed batch-1 forward passes")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--lr", opt.lr, "SGD learning rate")->capture_default_str();
  app.add_option("--momentum", opt.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight-decay", opt.weight_decay, "SGD L2 penalty")->capture_default_str();
  app.add_option("--seed", opt.seed, "Seed of the weights and the shuffling")
      ->capture_default_str();
  app.add_flag("--skip-train", opt.skip_train, "Do not time training");
  app.add_flag("--skip-latency", opt.skip_latency, "Do not time batch-1 inference");
  CLI11_PARSE(app, argc, argv);

  try {
    effml::set_num_threads(opt.threads);
    const effml::Dataset train_set = effml::load_fashion_mnist("train");
    auto model = effml::make_model(opt.model, opt.seed);
    nlohmann::json out{{"framework", "effml"},
                       {"model", opt.model},
                       {"parameters", model->num_parameters()},
                       {"batch_size", opt.batch_size},
                       {"threads", effml::num_threads()},
                       {"optimizer",
                        {{"name", "sgd"},
                         {"lr", as_decimal(opt.lr)},
                         {"momentum", as_decimal(opt.momentum)},
                         {"weight_decay", as_decimal(opt.weight_decay)}}},
                       {"warmup_batches", opt.warmup_batches},
                       {"build",
                        {{"eigen_blas", static_cast<bool>(EFFML_BENCH_EIGEN_BLAS)},
#ifdef _OPENMP
                         {"openmp", true}
#else
                         {"openmp", false}
#endif
                        }}};
    if (!opt.skip_train) out["train"] = bench_train(*model, train_set, opt);
    if (!opt.skip_latency) out["latency"] = bench_latency(*model, train_set, opt);
    std::printf("%s\n", out.dump(2).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_core: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
