// bench_int8: latency of the integer-only VGG (effml::QuantizedVgg, Lab 2's int8_vgg model)
// against the fp32 VGG it was quantized from.
//
// It loads the fp32 checkpoint and the integer-only model file, takes the first --images test
// images (normalised for the fp32 model; the raw pixels through effml::pixels_to_int8 for the
// integer one, as the grader feeds it), and for each thread count measures four figures:
//   fp32 batch 1, int8 batch 1, fp32 batch N, int8 batch N
// where fp32 is Module::forward in evaluation mode and int8 is QuantizedVgg::forward. Every
// round times the four one after the other (the order reversed in every other round, so neither
// model always runs second), each as effml::measure_latency's median of its repeats; the figure
// reported is the median of the rounds' medians, with their range. Measured in one run and
// interleaved, a busy spell of the machine hits both models alike.
//
// It also reports how often the two models predict the same class for the images used, and
// each one's accuracy on them, so a fast but wrong integer model does not go unnoticed.
// Prints a table; --json FILE also writes the figures.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "effml/data.h"
#include "effml/error.h"
#include "effml/lab_runner.h"
#include "effml/metrics.h"
#include "effml/module.h"
#include "effml/parallel.h"
#include "effml/quantized.h"
#include "effml/tensor.h"

namespace {

struct Options {
  std::string fp32_path;
  std::string int8_path;
  std::vector<int> threads = {1, 2};
  int rounds = 5;
  int64_t images = 256;        // the large batch, and the images the predictions are compared on
  int64_t batch1_images = 16;  // batch-1 calls cycle through the first ones
  int batch1_repeats = 200;    // timed batch-1 calls per round and model
  int batch_repeats = 5;       // timed batch-N calls per round and model
  int warmup = 3;              // untimed calls before each round's timed ones
  std::string kernel = "best"; // the int8 convolution kernel: best or portable
  std::string json_path;
};

/// CPU time of the whole process (all threads, user + system) so far, in seconds.
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

/// The 1-, 5- and 15-minute load averages, as /proc/loadavg gives them ("?" elsewhere).
std::string load_average() {
  std::ifstream f("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  if (!(f >> a >> b >> c)) return "?";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %.2f %.2f", a, b, c);
  return buf;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Predicted class of each row of (N, 10) int8 logits: the first largest value.
std::vector<int64_t> argmax_rows_i8(const effml::Tensor& logits) {
  std::vector<int64_t> out(static_cast<std::size_t>(logits.size(0)));
  const int64_t classes = logits.size(1);
  for (int64_t i = 0; i < logits.size(0); ++i) {
    const int8_t* row = logits.data_i8() + i * classes;
    out[static_cast<std::size_t>(i)] = std::max_element(row, row + classes) - row;
  }
  return out;
}

/// One timed figure: a model at a batch size; each round adds its median.
struct Case {
  std::string model;  // "fp32" or "int8"
  int64_t batch = 1;
  int repeats = 1;
  std::function<void()> call;
  std::vector<double> round_ms;  // one median per round
  double wall_s = 0, cpu_s = 0;  // over all timed rounds: CPU per wall second = cores used
};

void time_round(Case& c, int warmup) {
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  const effml::LatencyStats st = effml::measure_latency(c.call, warmup, c.repeats);
  c.cpu_s += process_cpu_seconds() - cpu0;
  c.wall_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  c.round_ms.push_back(st.median_ms);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{
      "bench_int8: batch-1 and batch-N latency of the integer-only VGG (QuantizedVgg::forward)\n"
      "against the fp32 VGG (Module::forward, evaluation mode), interleaved over rounds, at\n"
      "each thread count; and how often the two predict the same class.",
      "bench_int8"};
  app.add_option("fp32", opt.fp32_path, "The fp32 VGG checkpoint (vgg_dense.safetensors)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("int8", opt.int8_path,
                 "The integer-only model of the same VGG (the lab2 runner's int8_vgg task)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--threads,-t", opt.threads, "Thread counts to measure at, e.g. 1 2")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--rounds", opt.rounds, "Interleaved rounds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--images", opt.images,
                 "The large batch: the first N test images (also the images compared)")
      ->check(CLI::Range(int64_t{1}, int64_t{10000}))
      ->capture_default_str();
  app.add_option("--batch1-repeats", opt.batch1_repeats, "Timed batch-1 calls per round")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--batch-repeats", opt.batch_repeats, "Timed batch-N calls per round")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--warmup", opt.warmup, "Untimed calls before each round's timed ones")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--kernel", opt.kernel,
                 "The int8 convolution kernel: best (VNNI when this build has it) or portable "
                 "(plain C++; the same results)")
      ->check(CLI::IsMember({"best", "portable"}))
      ->capture_default_str();
  app.add_option("--json", opt.json_path, "Also write the figures to this JSON file");
  CLI11_PARSE(app, argc, argv);

  try {
    const std::string load_start = load_average();
    auto fp32 = effml::load_model_checkpoint(opt.fp32_path);
    fp32->eval();
    const effml::QuantizedVgg int8 = effml::load_quantized_vgg(opt.int8_path);
    const effml::Int8Kernel kernel =
        opt.kernel == "portable" ? effml::Int8Kernel::Portable : effml::Int8Kernel::Best;
    const bool vnni = kernel == effml::Int8Kernel::Best && effml::int8_vnni_available();
    const std::string kernel_name =
        vnni ? "VNNI (vpdpbusd)" : "portable (int16 patches, int32 products)";

    // The same images for both: normalised for the fp32 model, raw pixels for the integer one.
    const int64_t n = opt.images;
    const effml::Dataset test = effml::load_fashion_mnist("test").subset(0, n);
    const effml::Dataset raw =
        effml::load_fashion_mnist("test", effml::default_fashion_mnist_dir(), false).subset(0, n);
    const effml::Tensor x_f32 = test.images;                        // (N, 1, 28, 28) float32
    const effml::Tensor x_i8 = effml::pixels_to_int8(raw.images);  // (N, 1, 28, 28) int8
    const int64_t ones = std::min(n, opt.batch1_images);
    std::vector<effml::Tensor> one_f32, one_i8;  // (1, 1, 28, 28) each, sliced before timing
    for (int64_t i = 0; i < ones; ++i) {
      one_f32.push_back(x_f32.narrow(i, 1));
      one_i8.push_back(x_i8.narrow(i, 1));
    }

    // Agreement of the predictions (first largest logit) on the images used.
    const std::vector<int64_t> pred_f32 = fp32->forward(x_f32).argmax_rows();
    const std::vector<int64_t> pred_i8 = argmax_rows_i8(int8.forward(x_i8, kernel));
    int64_t agree = 0, right_f32 = 0, right_i8 = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto k = static_cast<std::size_t>(i);
      agree += pred_f32[k] == pred_i8[k];
      right_f32 += pred_f32[k] == test.labels[k];
      right_i8 += pred_i8[k] == test.labels[k];
    }
    const auto pct = [n](int64_t count) { return 100.0 * static_cast<double>(count) / n; };

    std::printf("bench_int8: integer-only VGG (QuantizedVgg::forward) against fp32 "
                "(Module::forward, evaluation mode)\n");
    std::printf("fp32 model    %s\n", opt.fp32_path.c_str());
    std::printf("int8 model    %s (%lld bytes of parameters)\n", opt.int8_path.c_str(),
                static_cast<long long>(int8.parameter_bytes()));
    std::printf("int8 kernel   %s\n", kernel_name.c_str());
    std::printf("images        the first %lld test images; batch 1 cycles through the first %lld\n",
                static_cast<long long>(n), static_cast<long long>(ones));
    std::printf("rounds        %d, interleaved (fp32, int8 / int8, fp32 alternately); a round's "
                "figure is the median of\n              %d batch-1 or %d batch-%lld calls after "
                "%d untimed; reported: median of the rounds [min, max]\n",
                opt.rounds, opt.batch1_repeats, opt.batch_repeats, static_cast<long long>(n),
                opt.warmup);
#ifdef _OPENMP
    std::printf("build         OpenMP on\n");
#else
    std::printf("build         OpenMP off (every thread count runs on one thread)\n");
#endif
    std::printf("load average  %s (1, 5, 15 min) at the start\n", load_start.c_str());
    std::printf("predictions   agree on %lld of %lld images (%.2f%%); accuracy fp32 %.2f%%, "
                "int8 %.2f%%\n\n",
                static_cast<long long>(agree), static_cast<long long>(n), pct(agree),
                pct(right_f32), pct(right_i8));

    nlohmann::json report{{"fp32", opt.fp32_path},
                          {"int8", opt.int8_path},
                          {"int8_kernel", vnni ? "vnni" : "portable"},
                          {"images", n},
                          {"rounds", opt.rounds},
                          {"batch1_repeats", opt.batch1_repeats},
                          {"batch_repeats", opt.batch_repeats},
                          {"agreement", static_cast<double>(agree) / n},
                          {"accuracy_fp32", static_cast<double>(right_f32) / n},
                          {"accuracy_int8", static_cast<double>(right_i8) / n},
                          {"load_average_start", load_start},
                          {"results", nlohmann::json::array()}};

    const char* head =
        "threads  batch |  fp32 ms  [round min, max]  cores |  int8 ms  [round min, max]  cores "
        "| int8 speed-up";
    std::printf("%s\n", head);
    std::printf("%s\n", std::string(std::char_traits<char>::length(head), '-').c_str());
    for (const int t : opt.threads) {
      effml::set_num_threads(t);
      std::size_t next_f32 = 0, next_i8 = 0;
      std::vector<Case> cases = {
          {"fp32", 1, opt.batch1_repeats,
           [&] { fp32->forward(one_f32[next_f32++ % one_f32.size()]); }, {}, 0, 0},
          {"int8", 1, opt.batch1_repeats,
           [&] { int8.forward(one_i8[next_i8++ % one_i8.size()], kernel); }, {}, 0, 0},
          {"fp32", n, opt.batch_repeats, [&] { fp32->forward(x_f32); }, {}, 0, 0},
          {"int8", n, opt.batch_repeats, [&] { int8.forward(x_i8, kernel); }, {}, 0, 0}};
      for (int r = 0; r < opt.rounds; ++r) {
        const std::vector<int> order = r % 2 == 0 ? std::vector<int>{0, 1, 2, 3}
                                                  : std::vector<int>{1, 0, 3, 2};
        for (const int i : order) time_round(cases[static_cast<std::size_t>(i)], opt.warmup);
      }
      for (std::size_t i = 0; i < cases.size(); i += 2) {
        const Case& f = cases[i];
        const Case& q = cases[i + 1];
        const double mf = median(f.round_ms), mq = median(q.round_ms);
        const auto lo = [](const Case& c) {
          return *std::min_element(c.round_ms.begin(), c.round_ms.end());
        };
        const auto hi = [](const Case& c) {
          return *std::max_element(c.round_ms.begin(), c.round_ms.end());
        };
        std::printf("%7d %6lld | %8.3f  [%7.3f, %8.3f]  %5.2f | %8.3f  [%7.3f, %8.3f]  %5.2f | "
                    "%12.2fx\n",
                    t, static_cast<long long>(f.batch), mf, lo(f), hi(f), f.cpu_s / f.wall_s, mq,
                    lo(q), hi(q), q.cpu_s / q.wall_s, mf / mq);
        report["results"].push_back({{"threads", t},
                                     {"batch", f.batch},
                                     {"fp32_ms", mf},
                                     {"fp32_round_ms", f.round_ms},
                                     {"fp32_cores", f.cpu_s / f.wall_s},
                                     {"int8_ms", mq},
                                     {"int8_round_ms", q.round_ms},
                                     {"int8_cores", q.cpu_s / q.wall_s},
                                     {"int8_speedup", mf / mq}});
      }
    }
    const std::string load_end = load_average();
    report["load_average_end"] = load_end;
    std::printf("\nms: milliseconds per call (the whole batch); cores: CPU seconds per wall second "
                "while timed\n(near the thread count when the run had its cores); int8 speed-up: "
                "fp32 ms / int8 ms\n(above 1: the integer model is faster).\n");
    std::printf("load average  %s (1, 5, 15 min) at the end\n", load_end.c_str());
    if (!opt.json_path.empty()) {
      std::ofstream out(opt.json_path);
      EFFML_CHECK(out, "bench_int8: cannot write " << opt.json_path);
      out << report.dump(2) << "\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_int8: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
