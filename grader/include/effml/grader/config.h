/// \file config.h
/// \brief How this build compiles runners: compiler, flags, the core library, include folders.
///
/// CMake writes `grader_config.json` into the build folder at configure time, so a runner is
/// compiled with exactly the compiler and flags that built the core it links against:
///
/// ```json
/// {"compiler": "/usr/bin/c++", "flags": ["-std=c++17", "-O2", "-march=native", "-fopenmp"],
///  "core_library": "/repo/build/core/libeffml_core.a", "include_dirs": ["/repo/core/include"],
///  "link_libs": ["-lz", "-fopenmp"], "source_dir": "/repo", "binary_dir": "/repo/build"}
/// ```
#pragma once

#include <string>
#include <vector>

namespace effml::grader {

/// The contents of `grader_config.json`.
struct GraderConfig {
  std::string compiler;                   ///< absolute path of the C++ compiler
  std::vector<std::string> flags;         ///< compile flags (standard, optimisation, arch, OpenMP)
  std::string core_library;               ///< absolute path of libeffml_core.a
  std::vector<std::string> include_dirs;  ///< core/include and the JSON library's folder
  std::vector<std::string> link_libs;     ///< what the core needs at link time (-lz, -fopenmp)
  std::string source_dir;                 ///< the repository root (holds labs/, reference/)
  std::string binary_dir;                 ///< the build folder (holds grader-cache/)
  std::string path;                       ///< the file this was read from ("" if built by hand)

  /// Reads and checks a config file: every field present with the right type, the compiler and
  /// the core library existing.
  /// \throws effml::Error naming the file and the field, or saying that the core library has
  ///         not been built yet (and the command that builds it)
  static GraderConfig load(const std::string& path);

  /// Where the config is looked for: `$EFFML_GRADER_CONFIG` when set, else `grader_config.json`
  /// next to the running executable when there is one, else the build folder this library was
  /// configured in.
  static std::string default_path();
};

}  // namespace effml::grader
