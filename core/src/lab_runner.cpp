#include "effml/lab_runner.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "effml/error.h"
#include "effml/models.h"

namespace effml {

RunnerInputs::RunnerInputs(const std::string& path) : file_(load_safetensors(path)), path_(path) {}

bool RunnerInputs::contains(const std::string& name) const {
  return file_.contains(name) || file_.contains("input." + name);
}

const Tensor& RunnerInputs::at(const std::string& name) const {
  if (!file_.contains(name) && file_.contains("input." + name)) return file_.at("input." + name);
  EFFML_CHECK(file_.contains(name), path_ << ": no input tensor '" << name << "'");
  return file_.at(name);
}

float RunnerInputs::scalar(const std::string& name) const {
  const Tensor& t = at(name);
  EFFML_CHECK(t.dtype() == DType::Float32 && t.numel() == 1,
              path_ << ": '" << name << "' must be one float32 value, got "
                    << dtype_name(t.dtype()) << " " << t.shape_str());
  return t.item();
}

std::vector<int32_t> RunnerInputs::ints(const std::string& name) const {
  const Tensor& t = at(name);
  EFFML_CHECK(t.dtype() == DType::Int32, path_ << ": '" << name << "' must be int32, got "
                                               << dtype_name(t.dtype()));
  return std::vector<int32_t>(t.data_i32(), t.data_i32() + t.numel());
}

TensorList RunnerInputs::with_prefix(const std::string& prefix) const {
  TensorList out;
  for (const std::string& p : {prefix, "input." + prefix}) {
    for (const auto& [name, t] : file_.tensors) {
      if (name.rfind(p, 0) == 0) out.emplace_back(name.substr(p.size()), t);
    }
    if (!out.empty()) break;
  }
  return out;
}

void save_tensor_list(const std::string& path, const TensorList& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, const Tensor*>> refs;
  for (const auto& [name, t] : tensors) refs.emplace_back(name, &t);
  save_safetensors(path, refs, metadata);
}

std::string lab_file(const std::string& lab, const std::string& file) {
  struct stat st{};
  const char* env = std::getenv("EFFML_LAB_DIR");
  if (env != nullptr && *env != '\0') return std::string(env) + "/" + file;
  const std::string path = "labs/" + lab + "/" + file;
  if (::stat(path.c_str(), &st) == 0) return path;
  throw Error("cannot find " + file + ": set EFFML_LAB_DIR to the lab's folder (labs/" + lab +
              ") or run from the repository's top folder");
}

std::unique_ptr<Sequential> load_model_checkpoint(const std::string& path) {
  const auto meta = read_metadata(path);
  const auto it = meta.find("model");
  EFFML_CHECK(it != meta.end(), path << ": no \"model\" in the checkpoint's metadata");
  auto model = make_model(it->second, 0);
  load_checkpoint(path, *model);
  return model;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* e = std::getenv(name);
  return e != nullptr && *e != '\0' ? std::string(e) : fallback;
}

uint64_t env_uint(const char* name, uint64_t fallback) {
  const std::string e = env_or(name, "");
  if (e.empty()) return fallback;
  char* end = nullptr;
  const uint64_t value = std::strtoull(e.c_str(), &end, 10);
  EFFML_CHECK(*end == '\0' && e[0] != '-',
              name << " must be a non-negative integer, got '" << e << "'");
  return value;
}

int64_t awkward_size(Rng& rng) {
  const int64_t sizes[] = {1, 3, 7, 17, 32, 33};
  return sizes[rng.randint(6)];
}

int64_t size_between(Rng& rng, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(rng.randint(static_cast<uint64_t>(hi - lo + 1)));
}

Tensor normal(const Shape& shape, float std, Rng& rng) {
  Tensor t = Tensor::randn(shape, rng);
  t.mul_(std);
  return t;
}

Tensor scalar_tensor(float value) { return Tensor(Shape{}, std::vector<float>{value}); }

namespace {

// FNV-1a hash of a task name: each task draws from its own stream, so one seed gives different
// sizes to different tasks.
uint64_t name_hash(const std::string& name) {
  uint64_t h = 14695981039346656037ull;
  for (const char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

int usage() {
  std::fprintf(stderr,
               "usage: runner gen TASK SEED INPUTS.safetensors\n"
               "       runner run TASK INPUTS.safetensors OUTPUTS.safetensors\n"
               "       runner list\n");
  return 2;
}

int dispatch(const std::vector<std::string>& args, const std::string& lab,
             const std::map<std::string, RunnerTask>& tasks) {
  if (args.size() == 1 && args[0] == "list") {
    for (const auto& [name, task] : tasks) std::printf("%s\n", name.c_str());
    return 0;
  }
  if (args.size() != 4) return usage();
  const std::string& mode = args[0];
  const std::string& name = args[1];
  const auto it = tasks.find(name);
  if (it == tasks.end()) {
    std::string known;
    for (const auto& [n, t] : tasks) known += " " + n;
    throw Error("unknown task '" + name + "'; tasks:" + known);
  }
  const RunnerTask& task = it->second;
  if (mode == "gen") {
    char* end = nullptr;
    const unsigned long long seed = std::strtoull(args[2].c_str(), &end, 10);
    EFFML_CHECK(!args[2].empty() && args[2][0] != '-' && *end == '\0',
                "the seed must be a non-negative integer, got '" << args[2] << "'");
    EFFML_CHECK(task.gen || task.gen_from_seed,
                "task '" << name << "' has no random inputs (run it with 'none')");
    Rng rng(seed ^ name_hash(name));
    save_tensor_list(args[3], task.gen ? task.gen(rng) : task.gen_from_seed(seed),
                     {{"lab", lab}, {"task", name}, {"seed", args[2]}});
    return 0;
  }
  if (mode == "run") {
    if (task.run_model) {
      task.run_model(args[2], args[3]);
      return 0;
    }
    const RunnerInputs inputs(args[2]);
    save_tensor_list(args[3], task.run(inputs), {{"lab", lab}, {"task", name}});
    return 0;
  }
  return usage();
}

}  // namespace

int run_lab_runner(int argc, char** argv, const std::string& lab,
                   const std::map<std::string, RunnerTask>& tasks) {
  try {
    return dispatch(std::vector<std::string>(argv + 1, argv + argc), lab, tasks);
  } catch (const NotImplemented& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

void put_vgg(TensorList& t, const std::string& prefix, Sequential& model) {
  std::vector<int32_t> cfg;
  for (int64_t c : vgg_config(model)) cfg.push_back(static_cast<int32_t>(c));
  t.emplace_back(prefix + "cfg", Tensor::from_i32({static_cast<int64_t>(cfg.size())}, cfg));
  for (const auto& p : model.named_parameters()) t.emplace_back(prefix + p.name, p.param->value);
  for (const auto& b : model.named_buffers()) t.emplace_back(prefix + b.name, *b.tensor);
}

std::unique_ptr<Sequential> get_vgg(const RunnerInputs& in, const std::string& prefix) {
  std::vector<int64_t> cfg;
  for (int32_t c : in.ints(prefix + "cfg")) cfg.push_back(c);
  auto model = make_vgg(cfg);
  auto assign = [&](const std::string& name, Tensor& target) {
    const Tensor& v = in.at(prefix + name);
    EFFML_CHECK(v.shape() == target.shape() && v.dtype() == target.dtype(),
                in.path() << ": '" << prefix << name << "' is " << v.shape_str() << ", the model's "
                          << target.shape_str());
    target.copy_(v);
  };
  for (const auto& p : model->named_parameters()) assign(p.name, p.param->value);
  for (const auto& b : model->named_buffers()) assign(b.name, *b.tensor);
  return model;
}

std::unique_ptr<Sequential> random_vgg(Rng& rng) {
  const int64_t convs = size_between(rng, 2, 4);
  std::vector<int64_t> cfg;
  for (int64_t j = 0; j < convs; ++j) {
    // Few channels keep the inputs small; 1 and odd counts are the awkward cases here.
    const int64_t widths[] = {1, 2, 3, 5, 7, 12};
    cfg.push_back(widths[rng.randint(6)]);
    if (j < 2 || j == convs - 1) cfg.push_back(0);  // 28 -> 14 -> 7 -> 3
  }
  auto model = make_vgg(cfg);
  for (const auto& p : model->named_parameters()) {
    Tensor& v = p.param->value;
    const float fan_in = v.dim() >= 2 ? static_cast<float>(v.numel() / v.size(0)) : 1.0f;
    const bool bn_scale = v.dim() == 1 && p.name.find("features.") == 0 &&
                          p.name.rfind(".weight") == p.name.size() - 7;
    v = normal(v.shape(), v.dim() >= 2 ? 1.0f / std::sqrt(fan_in) : 0.2f, rng);
    if (bn_scale) v = v + 1.0f;
  }
  for (const auto& b : model->named_buffers()) {
    const bool var = b.name.find("running_var") != std::string::npos;
    *b.tensor = var ? Tensor::rand(b.tensor->shape(), rng, 0.5f, 2.0f)
                    : normal(b.tensor->shape(), 0.3f, rng);
  }
  return model;
}

}  // namespace effml
