// Reading grader_config.json (see config.h).
#include "effml/grader/config.h"

#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "effml/error.h"
#include "effml/grader/files.h"

#ifndef EFFML_GRADER_DEFAULT_CONFIG
#define EFFML_GRADER_DEFAULT_CONFIG "grader_config.json"
#endif

namespace effml::grader {

namespace {

std::string string_field(const nlohmann::json& j, const std::string& key, const std::string& file) {
  if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty()) {
    throw Error(file + ": field \"" + key + "\" must be a non-empty string");
  }
  return j[key].get<std::string>();
}

std::vector<std::string> list_field(const nlohmann::json& j, const std::string& key,
                                    const std::string& file) {
  if (!j.contains(key) || !j[key].is_array()) {
    throw Error(file + ": field \"" + key + "\" must be an array of strings");
  }
  std::vector<std::string> out;
  for (const auto& item : j[key]) {
    if (!item.is_string()) throw Error(file + ": field \"" + key + "\" must hold only strings");
    if (!item.get<std::string>().empty()) out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace

GraderConfig GraderConfig::load(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  } catch (const Error& e) {
    throw Error(std::string(e.what()) +
                " (the build writes this file when CMake configures it; set EFFML_GRADER_CONFIG "
                "to use another build's)");
  }
  if (!j.is_object()) throw Error(path + ": expected a JSON object");
  GraderConfig c;
  c.path = path;
  c.compiler = string_field(j, "compiler", path);
  c.flags = list_field(j, "flags", path);
  c.core_library = string_field(j, "core_library", path);
  c.include_dirs = list_field(j, "include_dirs", path);
  c.link_libs = list_field(j, "link_libs", path);
  c.source_dir = string_field(j, "source_dir", path);
  c.binary_dir = string_field(j, "binary_dir", path);
  if (::access(c.compiler.c_str(), X_OK) != 0) {
    throw Error(path + ": the compiler " + c.compiler + " does not exist or is not executable");
  }
  if (!is_plain_file(c.core_library)) {
    throw Error("the core library " + c.core_library +
                " has not been built yet; build it with `make -C " + c.binary_dir + " effml`");
  }
  return c;
}

std::string GraderConfig::default_path() {
  const char* env = std::getenv("EFFML_GRADER_CONFIG");
  if (env != nullptr && env[0] != '\0') return env;
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<std::size_t>(n));
    dir = dir.substr(0, dir.find_last_of('/'));
    const std::string candidate = dir + "/grader_config.json";
    if (is_plain_file(candidate)) return candidate;
  }
  return EFFML_GRADER_DEFAULT_CONFIG;
}

}  // namespace effml::grader
