// Public fixtures from the reference runner (see fixtures.h).
#include "effml/grader/fixtures.h"

#include <unistd.h>

#include <filesystem>
#include <map>

#include "effml/error.h"
#include "effml/grader/build.h"
#include "effml/grader/files.h"
#include "effml/grader/manifest.h"
#include "effml/grader/sandbox.h"
#include "effml/safetensors.h"

namespace effml::grader {

namespace {

namespace fs = std::filesystem;

// Runs the trusted reference runner in `dir` with the task's limits and one OpenMP thread.
// EFFML_LAB_DIR tells it where the lab's data files are, as in grading.
void run_reference(const std::string& runner, const std::vector<std::string>& args,
                   const std::string& dir, const Task& task, bool use_bwrap, uint64_t seed,
                   const std::string& lab_dir) {
  SandboxOptions o;
  o.argv = {runner};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.workdir = dir;
  o.use_bwrap = use_bwrap;
  o.env = {{"OMP_NUM_THREADS", "1"}, {"EFFML_LAB_DIR", absolute_path(lab_dir)}};
  // Bound read-only: a tree under /tmp is otherwise hidden by the sandbox's private /tmp.
  o.readonly_paths = {absolute_path(lab_dir)};
  o.run_as_uid = static_cast<uint32_t>(::geteuid());
  o.run_as_gid = static_cast<uint32_t>(::getegid());
  SandboxLimits l;
  l.wall_seconds = task.limits.wall_seconds;
  l.cpu_seconds = task.limits.cpu_seconds;
  l.memory_bytes = task.limits.memory_mb << 20;
  l.output_bytes = task.limits.output_kb << 10;
  l.file_bytes = task.limits.file_mb << 20;
  l.processes = task.limits.processes;
  const SandboxResult r = run_sandboxed(o, l);
  if (r.kind != ExitKind::Ok) {
    throw Error("fixtures: the reference runner `" + args[0] + " " + task.name + "` (seed " +
                std::to_string(seed) + ") " + r.reason() + "\n" + first_lines(r.output, 20));
  }
}

}  // namespace

std::string fixture_file_name(const std::string& task, int k) {
  if (k == 0) return task + ".safetensors";
  return task + "." + std::to_string(k - 1) + ".safetensors";
}

std::vector<std::string> write_fixtures(const GraderConfig& config, const FixtureOptions& options) {
  EFFML_CHECK(options.cases >= 1, "fixtures: --cases must be at least 1, got " << options.cases);
  const std::string repo =
      absolute_path(options.repo_root.empty() ? config.source_dir : options.repo_root);
  const LabPaths paths = find_lab(repo, options.lab);
  if (paths.reference_dir.empty()) {
    throw Error("fixtures: there is no " + repo + "/reference/" + paths.name +
                ": fixtures are generated from the reference solution, which only the "
                "instructor's repository has");
  }
  // The public manifest only: a hidden task must leave no trace in the public fixtures.
  LabPaths public_paths = paths;
  public_paths.reference_dir.clear();
  const Manifest manifest = load_manifest(public_paths);
  const std::string out =
      absolute_path(options.out_dir.empty() ? paths.lab_dir + "/fixtures" : options.out_dir);
  const auto say = [&](const std::string& line) {
    if (options.progress) options.progress(manifest.short_name + ": " + line);
  };

  const std::string scratch = make_temp_dir("/tmp", "effml-fixtures-");
  struct Cleanup {
    std::string dir;
    ~Cleanup() { remove_tree(dir); }
  } cleanup{scratch};

  say("building the reference runner");
  BuildRequest req;
  req.lab_dir = paths.lab_dir;
  req.impl_dir = paths.reference_dir;
  req.scratch_dir = scratch + "/build";
  req.cache_dir = absolute_path(options.cache_dir.empty() ? config.binary_dir + "/grader-cache"
                                                          : options.cache_dir);
  req.use_bwrap = options.use_bwrap;
  req.run_as_uid = static_cast<uint32_t>(::geteuid());
  req.run_as_gid = static_cast<uint32_t>(::getegid());
  req.trusted = true;
  const BuildResult built = build_runner(config, manifest, req);
  if (!built.ok) throw Error("fixtures: the reference of " + paths.name + " does not build:\n" +
                             built.message);
  const std::string runner = scratch + "/runner";
  link_or_copy(built.runner_path, runner);

  make_dirs(out);
  for (const auto& entry : fs::directory_iterator(out)) {
    if (entry.path().extension() == ".safetensors") remove_tree(entry.path().string());
  }

  std::vector<std::string> written;
  for (const Task& task : manifest.tasks) {
    if (task.kind != TaskKind::Exact || task.hidden || task.visibility != "visible") continue;
    for (int k = 0; k < options.cases; ++k) {
      const uint64_t seed = options.seed + static_cast<uint64_t>(k);
      const std::string dir = scratch + "/" + task.name + "." + std::to_string(k);
      make_dirs(dir);
      run_reference(runner, {"gen", task.name, std::to_string(seed), "inputs.safetensors"}, dir,
                    task, options.use_bwrap, seed, paths.lab_dir);
      run_reference(runner, {"run", task.name, "inputs.safetensors", "expected.safetensors"}, dir,
                    task, options.use_bwrap, seed, paths.lab_dir);
      const SafetensorsFile inputs = load_safetensors(dir + "/inputs.safetensors");
      const SafetensorsFile expected = load_safetensors(dir + "/expected.safetensors");
      std::vector<std::pair<std::string, const Tensor*>> tensors;
      for (const auto& [name, t] : inputs.tensors) tensors.emplace_back("input." + name, &t);
      for (const auto& [name, t] : expected.tensors) tensors.emplace_back("expected." + name, &t);
      const std::map<std::string, std::string> metadata = {
          {"format", "effml-lab-fixture"},
          {"version", "1"},
          {"lab", manifest.lab},
          {"task", task.name},
          {"seed", std::to_string(seed)},
          {"generator", "effml fixtures " + manifest.lab + " --seed " +
                            std::to_string(options.seed) + " (reference runner: gen, then run)"}};
      const std::string path = out + "/" + fixture_file_name(task.name, k);
      save_safetensors(path, tensors, metadata);
      written.push_back(path);
    }
    say(task.name + ": " + std::to_string(options.cases) + " fixture(s), seeds " +
        std::to_string(options.seed) + ".." + std::to_string(options.seed + options.cases - 1));
  }
  return written;
}

}  // namespace effml::grader
