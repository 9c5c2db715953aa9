// The student release (see release.h).
#include "effml/grader/release.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "effml/error.h"
#include "effml/grader/files.h"
#include "effml/grader/fixtures.h"

namespace effml::grader {

namespace {

namespace fs = std::filesystem;

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> parts;
  std::string part;
  for (char c : path) {
    if (c == '/') {
      if (!part.empty()) parts.push_back(part);
      part.clear();
    } else {
      part += c;
    }
  }
  if (!part.empty()) parts.push_back(part);
  return parts;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Runs a shell command and returns its stdout; `ok` is false when it exits non-zero.
std::string capture(const std::string& command, bool& ok) {
  ok = false;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buf[65536];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return out;
}

std::vector<std::string> git_files(const std::string& repo, bool& ok) {
  std::vector<std::string> files;
  const std::string top = trim_right(
      capture("git -C " + shell_quote(repo) + " rev-parse --show-toplevel 2>/dev/null", ok));
  // Only when the folder is the top of its own work tree: a repository copied inside another
  // one's tree (no .git of its own) is walked instead.
  if (!ok || absolute_path(top) != repo) {
    ok = false;
    return files;
  }
  const std::string out = capture("git -C " + shell_quote(repo) +
                                      " ls-files -z --cached --others --exclude-standard",
                                  ok);
  if (!ok) return files;
  std::size_t start = 0;
  while (start < out.size()) {
    const std::size_t end = out.find('\0', start);
    const std::string path = out.substr(start, end == std::string::npos ? end : end - start);
    if (!path.empty()) files.push_back(path);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return files;
}

bool skipped_in_walk(const std::string& name, bool top_level) {
  if (name == ".git" || name == "__pycache__" || name == ".ipynb_checkpoints") return true;
  if (top_level && (name == "out" || name.rfind("build", 0) == 0)) return true;
  return false;
}

std::vector<std::string> walk_files(const std::string& repo) {
  std::vector<std::string> files;
  std::error_code ec;
  fs::recursive_directory_iterator it(repo, ec), end;
  EFFML_CHECK(!ec, "release: cannot list " << repo << ": " << ec.message());
  for (; it != end; it.increment(ec)) {
    EFFML_CHECK(!ec, "release: cannot list " << repo << ": " << ec.message());
    const std::string name = it->path().filename().string();
    const bool is_dir = it->is_directory() && !it->is_symlink();
    if (is_dir && skipped_in_walk(name, it.depth() == 0)) {
      it.disable_recursion_pending();
      continue;
    }
    if (is_dir) continue;
    if (name.size() > 4 && name.substr(name.size() - 4) == ".pyc") continue;
    files.push_back(fs::relative(it->path(), repo).generic_string());
  }
  return files;
}

bool is_under(const std::string& path, const std::string& folder) {
  return path == folder || (path.size() > folder.size() && path.rfind(folder, 0) == 0 &&
                            path[folder.size()] == '/');
}

}  // namespace

bool is_instructor_only(const std::string& relative_path) {
  const std::vector<std::string> parts = components(relative_path);
  if (!parts.empty() && parts[0] == "reference") return true;
  if (parts.size() >= 2 && parts[0] == "tests" && parts[1] == "grader") return true;
  for (const auto& p : parts) {
    if (lower(p).find("hidden") != std::string::npos) return true;
  }
  return false;
}

std::vector<std::string> list_repository_files(const std::string& repo_root, std::string* how) {
  const std::string repo = absolute_path(repo_root);
  bool ok = false;
  std::vector<std::string> listed = git_files(repo, ok);
  if (how != nullptr) *how = ok ? "git" : "walk";
  if (!ok) listed = walk_files(repo);
  std::vector<std::string> files;
  for (const auto& f : listed) {
    std::error_code ec;
    // git lists files deleted from the work tree until the deletion is committed.
    if (fs::symlink_status(repo + "/" + f, ec).type() == fs::file_type::not_found) continue;
    files.push_back(f);
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

ReleaseResult make_release(const GraderConfig& config, const ReleaseOptions& options) {
  EFFML_CHECK(!options.out_dir.empty(), "release: no output folder given (--out DIR)");
  const std::string repo =
      absolute_path(options.repo_root.empty() ? config.source_dir : options.repo_root);
  const std::string out = absolute_path(options.out_dir);
  const auto say = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };
  EFFML_CHECK(!is_under(repo, out),
              "release: the output folder " << out << " is the repository " << repo
                                            << " or contains it; choose a folder outside it");

  ReleaseResult result;
  const std::vector<std::string> files = list_repository_files(repo, &result.listing);
  if (is_under(out, repo)) {
    const std::string rel = out.substr(repo.size() + 1);
    for (const auto& f : files) {
      EFFML_CHECK(!is_under(f, rel), "release: the output folder " << out << " holds " << f
                                         << ", a file of the repository; choose a folder that "
                                            "git ignores (out/...) or one outside the repository");
    }
  }
  if (is_dir(out) && !fs::is_empty(out)) {
    EFFML_CHECK(options.force, "release: " << out
                                           << " exists and is not empty; remove it or pass --force "
                                              "to replace it");
    remove_tree(out);
  }
  make_dirs(out);

  say("copying the files " + result.listing + " lists, without reference/ and hidden files");
  for (const auto& f : files) {
    if (is_instructor_only(f)) {
      result.excluded.push_back(f);
      continue;
    }
    const std::string from = repo + "/" + f;
    const std::string to = out + "/" + f;
    make_dirs(fs::path(to).parent_path().string());
    std::error_code ec;
    if (fs::is_symlink(from, ec)) {
      fs::copy_symlink(from, to, ec);
      EFFML_CHECK(!ec, "release: cannot copy the link " << from << ": " << ec.message());
    } else {
      copy_file(from, to);
    }
    result.files.push_back(f);
  }

  if (options.fixtures && is_dir(repo + "/labs")) {
    std::vector<std::string> labs;
    for (const auto& entry : fs::directory_iterator(repo + "/labs")) {
      const std::string name = entry.path().filename().string();
      if (is_plain_file(entry.path().string() + "/manifest.json") &&
          is_dir(repo + "/reference/" + name)) {
        labs.push_back(name);
      }
    }
    std::sort(labs.begin(), labs.end());
    for (const auto& lab : labs) {
      say("regenerating the fixtures of " + lab + " from its reference");
      FixtureOptions f;
      f.lab = lab;
      f.repo_root = repo;
      f.out_dir = out + "/labs/" + lab + "/fixtures";
      f.cache_dir = options.cache_dir;
      f.seed = options.fixture_seed;
      f.use_bwrap = options.use_bwrap;
      f.progress = options.progress;
      const auto written = write_fixtures(config, f);
      result.fixtures.insert(result.fixtures.end(), written.begin(), written.end());
    }
  }
  say("wrote " + std::to_string(result.files.size()) + " files and " +
      std::to_string(result.fixtures.size()) + " fixtures to " + out + " (left out " +
      std::to_string(result.excluded.size()) + " instructor-only files)");
  return result;
}

}  // namespace effml::grader
