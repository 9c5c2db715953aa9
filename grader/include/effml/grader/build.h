/// \file build.h
/// \brief Builds a lab's runner from an implementation folder (the stub, the reference or a
/// submission), with the checks that keep a submission from seeing what it should not.
///
/// Steps, each of which can fail the build with a message for the student:
/// 1. Only the files the manifest declares (`student_files`) are taken from the implementation
///    folder; each must be a regular file (not a symbolic link) of at most 1 MiB.
/// 2. Source checks: no `#include` with `..`, an absolute path or `reference` in it, and no
///    inline assembly (`asm`, which could `.incbin` any file into the program).
/// 3. The files are compiled (`-c -MD`) in a scratch folder whose `include/` holds copies of the
///    lab's public headers only; the dependency files must name nothing outside the scratch
///    folder, the core's include folders and the system's.
/// 4. The objects' undefined symbols pass the allow-list of symbols.h.
/// 5. They are linked with the lab's runner (compiled once and cached) and the core library.
///
/// The compiler and `nm` run through run_sandboxed() (so a template bomb or an `#include
/// "/dev/zero"` ends at a time limit) with the caller's hidden paths hidden. A successful build
/// is cached in `cache_dir` under a hash of every input (compiler, flags, the core library,
/// runner, headers, sources); a cache entry is used only when its recorded inputs match byte
/// for byte. Safe to call from several threads and processes at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "effml/grader/config.h"
#include "effml/grader/manifest.h"

namespace effml::grader {

/// What to build and where.
struct BuildRequest {
  std::string lab_dir;      ///< the lab folder (runner.cpp, public headers)
  std::string impl_dir;     ///< where the student files are taken from
  std::string scratch_dir;  ///< a folder to compile in (created; its contents are replaced)
  std::string cache_dir;    ///< where built runners are kept; "" for no cache
  std::vector<std::string> hidden_paths;  ///< hidden from the compiler (e.g. reference/)
  bool use_bwrap = true;                  ///< see SandboxOptions::use_bwrap
  double compile_seconds = 300;           ///< wall-clock limit of each compiler run
  uint32_t run_as_uid = 65534;            ///< see SandboxOptions::run_as_uid
  uint32_t run_as_gid = 65534;            ///< see SandboxOptions::run_as_gid
  /// The implementation is trusted (the reference): only such a build stores the lab runner's
  /// object in the cache, which every later build links, so that a submission's build can
  /// never leave a tampered object there.
  bool trusted = false;
};

/// The outcome of a build.
struct BuildResult {
  bool ok = false;          ///< a runner was built (or found in the cache)
  std::string runner_path;  ///< the runner executable when ok
  std::string message;      ///< when not ok: what was wrong, with the compiler's first lines
  std::string log;          ///< the full compiler output (capped by the sandbox)
  bool cached = false;      ///< the runner came from the cache
  double seconds = 0;       ///< wall time of the whole build
};

/// Builds (or finds in the cache) the runner of `manifest` with the files of
/// `request.impl_dir`. Problems of the submission give `ok == false` and a message; problems of
/// the grader itself (no compiler, a folder that cannot be written) throw effml::Error.
BuildResult build_runner(const GraderConfig& config, const Manifest& manifest,
                         const BuildRequest& request);

/// Lines of `source` that break the source checks (step 2 above), as
/// "lab0.cpp:3: #include \"../x.h\" is not allowed: ..."; empty when the file passes.
/// `file` names the file in the messages.
std::vector<std::string> check_source(const std::string& file, const std::string& source);

}  // namespace effml::grader
