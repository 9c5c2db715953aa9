// `effml train`, `effml eval`, `effml info`: the model commands.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "effml/data.h"
#include "effml/grader/model_checks.h"
#include "effml/metrics.h"
#include "effml/deep_compression.h"
#include "effml/models.h"
#include "effml/parallel.h"
#include "effml/safetensors.h"
#include "effml/train.h"

namespace effml::cli {

namespace {

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

std::string parent_dir(const std::string& p) {
  const auto slash = p.find_last_of('/');
  return slash == std::string::npos ? "" : p.substr(0, slash);
}

void make_dirs(const std::string& dir) {
  if (dir.empty()) return;
  std::string cur;
  for (std::size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      if (!cur.empty()) ::mkdir(cur.c_str(), 0755);
    }
    if (i < dir.size()) cur += dir[i];
  }
}

// True when the file starts with the Deep Compression magic "EFDC".
bool is_deep_compressed(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string(magic, 4) == "EFDC";
}

std::string strip_suffix(const std::string& s, const std::string& suffix) {
  if (s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0)
    return s.substr(0, s.size() - suffix.size());
  return s;
}

/// A model from a name ("lenet300") or from a checkpoint whose metadata names the model.
std::unique_ptr<Sequential> load_model(const std::string& name_or_path,
                                       std::map<std::string, std::string>* meta_out = nullptr) {
  for (auto& n : model_names())
    if (n == name_or_path) return make_model(n, 0);
  if (!file_exists(name_or_path)) {
    std::string known;
    for (auto& n : model_names()) known += " " + n;
    throw Error("'" + name_or_path + "' is neither a model name (" + known.substr(1) +
                ") nor a checkpoint file");
  }
  if (is_deep_compressed(name_or_path)) {
    // A Deep Compression file (Lab 2): decoded into the model its metadata names.
    std::map<std::string, std::string> meta = load_deep_compressed(name_or_path).metadata;
    auto it = meta.find("model");
    if (it == meta.end())
      throw Error(name_or_path + ": the file's metadata has no \"model\" entry, so the "
                  "architecture is unknown");
    auto model = make_model(it->second, 0);
    load_deep_compressed_into(name_or_path, *model);
    if (meta_out) *meta_out = meta;
    return model;
  }
  auto meta = read_metadata(name_or_path);
  auto it = meta.find("model");
  if (it == meta.end())
    throw Error(name_or_path + ": the checkpoint's metadata has no \"model\" entry, so the "
                "architecture is unknown");
  // A VGG may have been channel-pruned: its widths come from the weights' shapes.
  auto model = it->second == "vgg"
                   ? make_vgg(grader::vgg_widths_from(name_or_path, vgg_config(*make_vgg())))
                   : make_model(it->second, 0);
  load_checkpoint(name_or_path, *model);
  if (meta_out) *meta_out = meta;
  return model;
}

void print_info_table(Module& model, const std::string& title) {
  const auto layers = profile_layers(model, image_input_shape(1));
  std::printf("%s (input (1, 1, 28, 28))\n\n", title.c_str());
  std::printf("%-16s %-52s %-18s %10s %12s %8s\n", "name", "layer", "output", "params", "MACs",
              "sparsity");
  int64_t params = 0, nonzeros = 0, macs = 0;
  for (const auto& l : layers) {
    std::printf("%-16s %-52s %-18s %10s %12s %7.1f%%\n", l.name.c_str(), l.description.c_str(),
                shape_str(l.output_shape).c_str(), with_commas(l.parameters).c_str(),
                with_commas(l.macs).c_str(), 100.0 * l.sparsity());
    params += l.parameters;
    nonzeros += l.nonzeros;
    macs += l.macs;
  }
  const double sparsity = params ? 1.0 - static_cast<double>(nonzeros) / params : 0.0;
  std::printf("%-16s %-52s %-18s %10s %12s %7.1f%%\n", "total", "", "",
              with_commas(params).c_str(), with_commas(macs).c_str(), 100.0 * sparsity);
  std::printf("\nsize: %.1f KiB at 32 bits, %.1f KiB at 8 bits; non-zeros: %s\n",
              model_size_bytes(model, 32) / 1024.0, model_size_bytes(model, 8) / 1024.0,
              with_commas(nonzeros).c_str());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "train", "Train a model on Fashion-MNIST and save a checkpoint (safetensors).");
  auto cfg = std::make_shared<TrainConfig>();
  auto model_name = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto threads = std::make_shared<int>(0);
  auto subset = std::make_shared<int64_t>(0);
  cmd->add_option("model", *model_name, "Model to train: lenet300, lenet5 or vgg")
      ->required()
      ->check(CLI::IsMember(model_names()));
  cmd->add_option("--epochs,-e", cfg->epochs, "Passes over the 60,000 training images")
      ->capture_default_str();
  cmd->add_option("--batch-size,-b", cfg->batch_size, "Images per optimizer step")
      ->capture_default_str();
  cmd->add_option("--optimizer", cfg->optimizer, "sgd (with momentum) or adam")
      ->check(CLI::IsMember({"sgd", "adam"}))
      ->capture_default_str();
  cmd->add_option("--lr", cfg->lr, "Initial learning rate")->capture_default_str();
  cmd->add_option("--momentum", cfg->momentum, "SGD momentum")->capture_default_str();
  cmd->add_option("--weight-decay", cfg->weight_decay, "L2 penalty")->capture_default_str();
  cmd->add_option("--schedule", cfg->schedule, "Learning-rate schedule: cosine, step, constant")
      ->check(CLI::IsMember({"cosine", "step", "constant"}))
      ->capture_default_str();
  cmd->add_option("--seed", cfg->seed, "Seed of the initial weights and of the shuffling")
      ->capture_default_str();
  cmd->add_option("--threads", *threads, "Threads (default: OMP_NUM_THREADS or all cores)");
  cmd->add_option("--subset", *subset, "Train on the first N training images only (0 = all)");
  cmd->add_option("--out,-o", *out,
                  "Checkpoint to write (default out/MODEL.safetensors); the per-epoch history "
                  "goes next to it as .history.json");
  cmd->add_flag("!--no-progress", cfg->progress, "Do not draw the progress bar");
  cmd->callback([=] {
    if (*threads > 0) set_num_threads(*threads);
    const std::string path = out->empty() ? "out/" + *model_name + ".safetensors" : *out;
    Dataset train_set = load_fashion_mnist("train");
    if (*subset > 0) train_set = train_set.subset(0, std::min(*subset, train_set.size()));
    const Dataset test_set = load_fashion_mnist("test");
    auto model = make_model(*model_name, cfg->seed);
    std::fprintf(stderr, "training %s (%s parameters) on %lld images, %d threads\n",
                 model_name->c_str(), with_commas(model->num_parameters()).c_str(),
                 static_cast<long long>(train_set.size()), num_threads());
    const auto history = train(*model, train_set, &test_set, *cfg);
    const double acc = history.empty() ? evaluate(*model, test_set).accuracy
                                       : history.back().test_accuracy;
    make_dirs(parent_dir(path));
    std::map<std::string, std::string> meta{
        {"model", *model_name},
        {"dataset", "fashion-mnist"},
        {"epochs", std::to_string(cfg->epochs)},
        {"seed", std::to_string(cfg->seed)},
        {"batch_size", std::to_string(cfg->batch_size)},
        {"optimizer", cfg->optimizer},
        {"lr", std::to_string(cfg->lr)},
        {"schedule", cfg->schedule},
        {"threads", std::to_string(num_threads())},
        {"train_images", std::to_string(train_set.size())},
        {"test_accuracy", std::to_string(acc)},
        {"command", command_line()}};
    save_checkpoint(path, *model, meta);
    nlohmann::json h = nlohmann::json::array();
    for (const auto& s : history)
      h.push_back({{"epoch", s.epoch}, {"lr", s.lr}, {"train_loss", s.train_loss},
                   {"train_accuracy", s.train_accuracy}, {"test_loss", s.test_loss},
                   {"test_accuracy", s.test_accuracy}, {"seconds", s.seconds}});
    const std::string hist_path = strip_suffix(path, ".safetensors") + ".history.json";
    std::ofstream(hist_path) << nlohmann::json{{"model", *model_name}, {"metadata", meta},
                                               {"history", h}}.dump(2)
                             << "\n";
    std::printf("model %s  test accuracy %.2f%%  checkpoint %s  history %s\n",
                model_name->c_str(), 100.0 * acc, path.c_str(), hist_path.c_str());
  });
}

void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval", "Evaluate a checkpoint on the 10,000 test images and print its metrics.");
  auto path = std::make_shared<std::string>();
  auto json_out = std::make_shared<std::string>();
  auto threads = std::make_shared<int>(0);
  cmd->add_option("checkpoint", *path, "A .safetensors file written by `effml train`")
      ->required();
  cmd->add_option("--json", *json_out, "Also write the metrics to this JSON file");
  cmd->add_option("--threads", *threads, "Threads (default: OMP_NUM_THREADS or all cores)");
  cmd->callback([=] {
    if (*threads > 0) set_num_threads(*threads);
    std::map<std::string, std::string> meta;
    auto model = load_model(*path, &meta);
    const Dataset test_set = load_fashion_mnist("test");
    const EvalResult r = evaluate(*model, test_set);
    model->eval();
    Tensor one = test_set.images.narrow(0, 1);
    const LatencyStats lat = measure_latency([&] { model->forward(one); }, 20, 200);
    const int64_t params = count_parameters(*model), nnz = count_nonzeros(*model);
    const int64_t macs = count_macs(*model, image_input_shape(1));
    std::printf("checkpoint      %s\n", path->c_str());
    std::printf("model           %s\n", meta["model"].c_str());
    std::printf("test accuracy   %.2f%%  (%lld images)\n", 100.0 * r.accuracy,
                static_cast<long long>(r.count));
    std::printf("test loss       %.4f\n", r.loss);
    std::printf("parameters      %s\n", with_commas(params).c_str());
    std::printf("non-zeros       %s\n", with_commas(nnz).c_str());
    std::printf("size (fp32)     %.1f KiB\n", model_size_bytes(*model, 32) / 1024.0);
    std::printf("size (sparse)   %.1f KiB  (pruned weights as bitmask + non-zeros)\n",
                sparse_model_size_bytes(*model, 32) / 1024.0);
    std::printf("MACs / image    %s\n", with_commas(macs).c_str());
    std::printf("latency (b=1)   %.3f ms median of %d (%d threads)\n", lat.median_ms, lat.repeats,
                num_threads());
    if (!json_out->empty()) {
      nlohmann::json j{{"checkpoint", *path},     {"metadata", meta},
                       {"test_accuracy", r.accuracy}, {"test_loss", r.loss},
                       {"parameters", params},    {"nonzeros", nnz},
                       {"size_bytes_fp32", model_size_bytes(*model, 32)},
                       {"size_bytes_sparse", sparse_model_size_bytes(*model, 32)},
                       {"macs", macs},            {"latency_ms_median", lat.median_ms}};
      std::ofstream(*json_out) << j.dump(2) << "\n";
    }
  });
}

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "info", "Print a model's layers: output shape, parameters, MACs and sparsity per layer.");
  auto what = std::make_shared<std::string>();
  cmd->add_option("model", *what,
                  "A model name (lenet300, lenet5, vgg; no checkpoint needed) or a checkpoint")
      ->required();
  cmd->callback([=] {
    auto model = load_model(*what);
    print_info_table(*model, *what);
  });
}

}  // namespace effml::cli
