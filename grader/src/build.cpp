// Building a lab's runner from declared files only, with include and symbol checks, cached by
// the content of every input (see build.h).
#include "effml/grader/build.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>

#include "effml/error.h"
#include "effml/grader/files.h"
#include "effml/grader/sandbox.h"
#include "effml/grader/symbols.h"

namespace effml::grader {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxSourceBytes = 1 << 20;
constexpr int kMessageLines = 40;
// Bumped when the layout of the build changes, so old cache entries are never reused.
constexpr const char* kCacheVersion = "effml-runner-cache-v1";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_source(const std::string& name) {
  return ends_with(name, ".cpp") || ends_with(name, ".cc") || ends_with(name, ".cxx");
}

std::string stem(const std::string& name) { return name.substr(0, name.find_last_of('.')); }

// The sandbox settings every tool run of a build shares.
struct ToolRunner {
  const GraderConfig& config;
  const BuildRequest& request;

  SandboxResult run(const std::vector<std::string>& argv, const std::string& workdir,
                    double seconds, int64_t output_bytes) const {
    SandboxOptions o;
    o.argv = argv;
    o.workdir = workdir;
    o.use_bwrap = request.use_bwrap;
    o.hidden_paths = request.hidden_paths;
    o.run_as_uid = request.run_as_uid;
    o.run_as_gid = request.run_as_gid;
    o.readonly_paths.push_back(config.core_library);
    for (const auto& dir : config.include_dirs) {
      if (is_dir(dir)) o.readonly_paths.push_back(dir);
    }
    o.env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"LC_ALL", "C"}, {"TMPDIR", workdir}};
    SandboxLimits l;
    l.wall_seconds = seconds;
    l.cpu_seconds = seconds;
    l.memory_bytes = int64_t{4} << 30;
    l.file_bytes = int64_t{1} << 30;
    l.processes = 32;
    l.output_bytes = output_bytes;
    return run_sandboxed(o, l);
  }
};

// "size:hash" of the core library: part of every cache key.
std::string fingerprint(const std::string& path) {
  const std::string content = read_file(path);
  return std::to_string(content.size()) + ":" + hex64(fnv1a64(content));
}

void add_to_stamp(std::string& stamp, const std::string& label, const std::string& content) {
  stamp += "--- " + label + " (" + std::to_string(content.size()) + " bytes)\n" + content + "\n";
}

std::string config_stamp(const GraderConfig& c) {
  std::string s = std::string(kCacheVersion) + "\ncompiler " + c.compiler + "\n";
  for (const auto& f : c.flags) s += "flag " + f + "\n";
  for (const auto& d : c.include_dirs) s += "include " + d + "\n";
  for (const auto& l : c.link_libs) s += "lib " + l + "\n";
  s += "core " + c.core_library + " " + fingerprint(c.core_library) + "\n";
  return s;
}

// The cached file `name` of the entry for `stamp`, or "" when there is none that matches.
std::string cache_lookup(const std::string& cache_dir, const std::string& stamp,
                         const std::string& name) {
  if (cache_dir.empty()) return "";
  const std::string entry = cache_dir + "/" + hex64(fnv1a64(stamp));
  if (!is_plain_file(entry + "/" + name) || !is_plain_file(entry + "/stamp")) return "";
  try {
    if (read_file(entry + "/stamp") != stamp) return "";
  } catch (const Error&) {
    return "";
  }
  return entry + "/" + name;
}

// Stores `file` as `name` in the entry for `stamp`; returns the cached path. Entries appear
// atomically (built in a temporary folder, then renamed), so concurrent graders never see half
// an entry; when two store the same entry, the first one wins.
std::string cache_store(const std::string& cache_dir, const std::string& stamp,
                        const std::string& file, const std::string& name) {
  if (cache_dir.empty()) return file;
  if (!is_dir(cache_dir)) {
    make_dirs(cache_dir);
    // Only the grader reads the cache: it holds the reference's runner.
    ::chmod(cache_dir.c_str(), 0700);
  }
  const std::string entry = cache_dir + "/" + hex64(fnv1a64(stamp));
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::string tmp = make_temp_dir(cache_dir, ".tmp-");
    copy_file(file, tmp + "/" + name);
    write_file(tmp + "/stamp", stamp);
    if (std::rename(tmp.c_str(), entry.c_str()) == 0) return entry + "/" + name;
    remove_tree(tmp);
    // Another grader stored the same entry first, or an outdated one is in the way.
    const std::string found = cache_lookup(cache_dir, stamp, name);
    if (!found.empty()) return found;
    remove_tree(entry);
  }
  return file;  // could not cache; the build itself is still good
}

// Comments and string/char literal contents replaced by spaces, newlines kept, so that a token
// search does not trip over "asm" in a comment.
std::string code_only(const std::string& src) {
  std::string out = src;
  enum { kCode, kLine, kBlock, kString, kChar } state = kCode;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const char c = src[i];
    const char next = i + 1 < src.size() ? src[i + 1] : '\0';
    switch (state) {
      case kCode:
        if (c == '/' && next == '/')
          state = kLine;
        else if (c == '/' && next == '*')
          state = kBlock;
        else if (c == '"')
          state = kString;
        else if (c == '\'')
          state = kChar;
        if (state == kLine || state == kBlock) out[i] = ' ';
        break;
      case kLine:
        if (c == '\n')
          state = kCode;
        else
          out[i] = ' ';
        break;
      case kBlock:
        if (c == '*' && next == '/') {
          out[i] = out[i + 1] = ' ';
          ++i;
          state = kCode;
        } else if (c != '\n') {
          out[i] = ' ';
        }
        break;
      case kString:
      case kChar:
        if (c == '\\') {
          out[i] = ' ';
          if (i + 1 < out.size() && src[i + 1] != '\n') out[++i] = ' ';
        } else if ((state == kString && c == '"') || (state == kChar && c == '\'')) {
          state = kCode;
        } else if (c != '\n') {
          out[i] = ' ';
        }
        break;
    }
  }
  return out;
}

// Paths a dependency file (-MD) lists, made absolute against `dir`.
std::vector<std::string> read_dependencies(const std::string& dep_file, const std::string& dir) {
  std::string text = read_file(dep_file);
  std::string joined;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == '\n') {
      joined += ' ';
      ++i;
    } else {
      joined += text[i];
    }
  }
  std::vector<std::string> deps;
  const auto colon = joined.find(": ");
  std::istringstream in(colon == std::string::npos ? "" : joined.substr(colon + 2));
  std::string path;
  while (in >> path) {
    if (path.empty() || path.back() == ':') continue;
    deps.push_back(path[0] == '/' ? path : dir + "/" + path);
  }
  return deps;
}

bool is_within(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

std::string canonical_or_same(const std::string& p) {
  std::error_code ec;
  const fs::path c = fs::weakly_canonical(p, ec);
  return ec ? absolute_path(p) : c.string();
}

// nm's view of a library: the names it defines. Cached per file and size and time of change,
// since the C library does not change while the grader runs.
std::set<std::string> library_symbols(const std::vector<std::string>& libraries, bool dynamic,
                                      const ToolRunner& tools, const std::string& workdir) {
  static std::mutex mutex;
  static std::map<std::string, std::set<std::string>> memo;
  std::set<std::string> all;
  for (const std::string& lib : libraries) {
    struct stat st {};
    if (::stat(lib.c_str(), &st) != 0) continue;
    const std::string key = lib + ":" + std::to_string(st.st_size) + ":" +
                            std::to_string(st.st_mtim.tv_sec) + "." +
                            std::to_string(st.st_mtim.tv_nsec);
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = memo.find(key);
      if (it != memo.end()) {
        all.insert(it->second.begin(), it->second.end());
        continue;
      }
    }
    std::vector<std::string> argv = {"nm", "-P", "--defined-only"};
    if (dynamic) argv.push_back("-D");
    argv.push_back(lib);
    const SandboxResult r = tools.run(argv, workdir, 120, int64_t{256} << 20);
    if (r.kind != ExitKind::Ok) {
      throw Error("cannot list the symbols of " + lib + ": nm " + r.reason() + "\n" +
                  first_lines(r.output, 10));
    }
    std::set<std::string> names = parse_nm_defined(r.output);
    all.insert(names.begin(), names.end());
    std::lock_guard<std::mutex> lock(mutex);
    memo[key] = std::move(names);
  }
  return all;
}

// Full path of a runtime library as the compiler finds it, or "" when it has none.
std::string compiler_library(const GraderConfig& config, const ToolRunner& tools,
                             const std::string& workdir, const std::string& name) {
  const SandboxResult r =
      tools.run({config.compiler, "-print-file-name=" + name}, workdir, 60, 1 << 16);
  const std::string path = trim_right(r.output);
  if (r.kind != ExitKind::Ok || path.empty() || path[0] != '/') return "";
  return canonical_or_same(path);
}

std::set<std::string> runtime_symbols(const GraderConfig& config, const ToolRunner& tools,
                                      const std::string& workdir) {
  std::vector<std::string> shared, archives;
  for (const char* name :
       {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libgomp.so.1"}) {
    const std::string p = compiler_library(config, tools, workdir, name);
    if (!p.empty()) shared.push_back(p);
  }
  for (const char* name : {"libgcc.a", "libc_nonshared.a"}) {
    const std::string p = compiler_library(config, tools, workdir, name);
    if (!p.empty()) archives.push_back(p);
  }
  EFFML_CHECK(!shared.empty(),
              "the compiler " << config.compiler << " does not find libc.so.6 or libstdc++.so.6");
  std::set<std::string> all = library_symbols(shared, true, tools, workdir);
  std::set<std::string> more = library_symbols(archives, false, tools, workdir);
  all.insert(more.begin(), more.end());
  // Provided by the start files and the linker, not by a library.
  for (const char* name :
       {"__dso_handle", "_GLOBAL_OFFSET_TABLE_", "__ehdr_start", "__TMC_END__", "_DYNAMIC"}) {
    all.insert(name);
  }
  return all;
}

BuildResult failed(BuildResult r, const std::string& message, double seconds) {
  r.ok = false;
  r.message = message;
  r.seconds = seconds;
  return r;
}

std::vector<std::string> compile_command(const GraderConfig& config) {
  std::vector<std::string> argv = {config.compiler};
  argv.insert(argv.end(), config.flags.begin(), config.flags.end());
  argv.insert(argv.end(), {"-fdiagnostics-color=never", "-fmax-errors=20", "-pipe", "-Iinclude"});
  for (const auto& dir : config.include_dirs) argv.push_back("-I" + dir);
  return argv;
}

// Message for a compiler run that did not succeed; throws when the grader is at fault.
std::string tool_failure(const SandboxResult& r, const std::string& what) {
  if (r.kind == ExitKind::StartFailed) throw Error("cannot run the compiler: " + r.start_error);
  if (r.kind == ExitKind::NonZeroExit) {
    return what + " failed:\n" + first_lines(r.output, kMessageLines);
  }
  return what + " did not finish: the compiler " + r.reason() + "\n" +
         first_lines(r.output, kMessageLines / 2);
}

}  // namespace

std::vector<std::string> check_source(const std::string& file, const std::string& source) {
  std::vector<std::string> problems;
  const std::vector<std::string> raw = split_lines(source);
  const std::vector<std::string> code = split_lines(code_only(source));
  static const std::regex directive(R"(^\s*#\s*(include|include_next|import|embed)\b)");
  static const std::regex raw_directive(R"(^\s*#\s*[a-z_]+\s*(.*)$)");
  static const std::regex asm_token(R"((^|[^A-Za-z0-9_])(asm|__asm|__asm__)([^A-Za-z0-9_]|$))");
  for (std::size_t i = 0; i < raw.size() && i < code.size(); ++i) {
    const std::string where = file + ":" + std::to_string(i + 1) + ": ";
    std::smatch m;
    if (std::regex_search(code[i], m, directive)) {
      // Detected on the code line (not in a comment); the target is read from the raw line,
      // since the code line has the quoted name blanked.
      const std::string kind = m[1].str();
      std::smatch r;
      std::string rest;
      if (std::regex_search(raw[i], r, raw_directive)) rest = r[1].str();
      std::string target = rest;
      if (!rest.empty() && (rest[0] == '"' || rest[0] == '<')) {
        const auto close = rest.find(rest[0] == '"' ? '"' : '>', 1);
        target = close == std::string::npos ? rest : rest.substr(0, close + 1);
      }
      target = trim_right(target);
      const std::string shown = "#" + kind + " " + target;
      std::string why;
      if (target.empty() || (target[0] != '"' && target[0] != '<')) {
        why = "is not allowed: name the header in quotes or angle brackets";
      } else if (target.find("..") != std::string::npos) {
        why = "is not allowed: an include path may not contain '..'";
      } else if (target.size() > 1 && target[1] == '/') {
        why = "is not allowed: an include path may not be absolute";
      } else if (target.find("reference") != std::string::npos) {
        why = "is not allowed: the reference solutions are not part of a submission's build";
      } else if (kind != "include") {
        why = "is not allowed: use #include";
      }
      if (!why.empty()) {
        problems.push_back(where + shown + " " + why +
                           " (a submission may include the lab's public headers, the effml "
                           "core headers and the standard library)");
      }
      continue;
    }
    if (std::regex_search(code[i], asm_token)) {
      problems.push_back(where + "inline assembly (asm) is not allowed in a submission");
    }
  }
  return problems;
}

BuildResult build_runner(const GraderConfig& config, const Manifest& manifest,
                         const BuildRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  BuildResult result;
  const ToolRunner tools{config, request};

  // 1. The declared files, and nothing else.
  std::vector<std::pair<std::string, std::string>> student;  // (name, content)
  std::vector<std::string> missing;
  for (const std::string& name : manifest.student_files) {
    const std::string path = request.impl_dir + "/" + name;
    if (!is_plain_file(path)) {
      missing.push_back(name);
      continue;
    }
    std::string content = read_file(path);
    if (content.size() > kMaxSourceBytes) {
      return failed(result,
                    name + " is " + std::to_string(content.size()) +
                        " bytes; a submitted file may be at most 1 MiB",
                    elapsed());
    }
    student.emplace_back(name, std::move(content));
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    return failed(result,
                  "The submission has no " + list + " (expected in " + request.impl_dir +
                      "; symbolic links are not accepted)",
                  elapsed());
  }

  // The cache keys: one for the runner's object, one for the whole runner.
  const std::string runner_source = read_file(request.lab_dir + "/" + manifest.runner);
  std::string lab_stamp = config_stamp(config);
  add_to_stamp(lab_stamp, manifest.runner, runner_source);
  std::vector<std::pair<std::string, std::string>> headers;
  for (const std::string& h : manifest.public_headers) {
    headers.emplace_back(h, read_file(request.lab_dir + "/" + h));
    add_to_stamp(lab_stamp, "include/" + h, headers.back().second);
  }
  for (const auto& [name, content] : student) {
    if (!is_source(name)) add_to_stamp(lab_stamp, name, content);  // headers the runner may use
  }
  std::string full_stamp = lab_stamp;
  for (const auto& [name, content] : student) add_to_stamp(full_stamp, name, content);
  for (const auto& s : manifest.forbidden_symbols) full_stamp += "forbidden " + s + "\n";

  const std::string hit = cache_lookup(request.cache_dir, full_stamp, "runner");
  if (!hit.empty()) {
    result.ok = true;
    result.cached = true;
    result.runner_path = hit;
    result.seconds = elapsed();
    return result;
  }

  // 2. Source checks.
  std::vector<std::string> problems;
  for (const auto& [name, content] : student) {
    auto p = check_source(name, content);
    problems.insert(problems.end(), p.begin(), p.end());
  }
  if (!problems.empty()) {
    std::string message;
    for (const auto& p : problems) message += (message.empty() ? "" : "\n") + p;
    return failed(result, first_lines(message, kMessageLines), elapsed());
  }

  // 3. The scratch folder: student sources at the top, public and student headers in include/
  //    (where both the sources and the runner find them), the runner in lab/.
  const std::string scratch = absolute_path(request.scratch_dir);
  remove_tree(scratch);
  make_dirs(scratch + "/include");
  make_dirs(scratch + "/lab");
  for (const auto& [name, content] : headers) write_file(scratch + "/include/" + name, content);
  for (const auto& [name, content] : student) {
    write_file(scratch + (is_source(name) ? "/" : "/include/") + name, content);
  }
  write_file(scratch + "/lab/" + manifest.runner, runner_source);

  std::vector<std::string> sources, objects;
  for (const auto& [name, content] : student) {
    if (!is_source(name)) continue;
    sources.push_back(name);
    objects.push_back(stem(name) + ".o");
  }
  if (!sources.empty()) {
    std::vector<std::string> argv = compile_command(config);
    argv.insert(argv.end(), {"-MD", "-c"});
    argv.insert(argv.end(), sources.begin(), sources.end());
    const SandboxResult r = tools.run(argv, scratch, request.compile_seconds, 256 << 10);
    result.log = r.output;
    if (r.kind != ExitKind::Ok) return failed(result, tool_failure(r, "Compilation"), elapsed());

    // Every header actually read must be public.
    std::vector<std::string> allowed = {canonical_or_same(scratch), "/usr/include", "/usr/lib/gcc",
                                        "/usr/local/include"};
    for (const auto& d : config.include_dirs) allowed.push_back(canonical_or_same(d));
    for (const std::string& src : sources) {
      for (const std::string& dep : read_dependencies(scratch + "/" + stem(src) + ".d", scratch)) {
        const std::string real = canonical_or_same(dep);
        bool ok = false;
        for (const auto& dir : allowed) ok = ok || is_within(real, dir);
        if (!ok) {
          return failed(result,
                        src + " includes " + dep +
                            ", which is outside the lab's public "
                            "headers, the effml core headers and the system headers",
                        elapsed());
        }
      }
    }

    // 4. The symbol allow-list.
    std::vector<std::string> nm = {"nm", "-P", "-A"};
    nm.insert(nm.end(), objects.begin(), objects.end());
    const SandboxResult s = tools.run(nm, scratch, 60, int64_t{64} << 20);
    if (s.kind != ExitKind::Ok) {
      throw Error("cannot list the symbols of the submission's objects: nm " + s.reason() + "\n" +
                  first_lines(s.output, 10));
    }
    const std::set<std::string> core =
        library_symbols({config.core_library}, false, tools, scratch);
    const std::set<std::string> runtime = runtime_symbols(config, tools, scratch);
    // Messages name the source file, not the object.
    ObjectSymbols symbols = parse_nm_objects(s.output);
    for (std::size_t k = 0; k < objects.size(); ++k) {
      auto it = symbols.undefined.find(objects[k]);
      if (it == symbols.undefined.end() || objects[k] == sources[k]) continue;
      symbols.undefined[sources[k]] = std::move(it->second);
      symbols.undefined.erase(objects[k]);
    }
    const std::string bad = check_symbols(symbols, core, runtime, manifest.forbidden_symbols);
    if (!bad.empty()) return failed(result, "Symbol check failed:\n" + bad, elapsed());
  }

  // 5. The runner's object (cached on its own: it does not depend on the student's sources).
  const std::string runner_object = "lab/" + stem(manifest.runner) + ".o";
  std::string cached_object = cache_lookup(request.cache_dir, lab_stamp, "runner.o");
  if (cached_object.empty()) {
    std::vector<std::string> argv = compile_command(config);
    argv.insert(argv.end(), {"-c", "lab/" + manifest.runner, "-o", runner_object});
    const SandboxResult r = tools.run(argv, scratch, request.compile_seconds, 256 << 10);
    if (r.kind != ExitKind::Ok) {
      result.log += r.output;
      return failed(result, tool_failure(r, "Compiling the lab's " + manifest.runner), elapsed());
    }
    if (request.trusted) {
      cache_store(request.cache_dir, lab_stamp, scratch + "/" + runner_object, "runner.o");
    }
  } else {
    copy_file(cached_object, scratch + "/" + runner_object);  // the scratch goes to the sandbox
  }

  // 6. Link.
  std::vector<std::string> link = {config.compiler};
  link.insert(link.end(), config.flags.begin(), config.flags.end());
  link.push_back(runner_object);
  link.insert(link.end(), objects.begin(), objects.end());
  link.push_back(config.core_library);
  link.insert(link.end(), config.link_libs.begin(), config.link_libs.end());
  link.insert(link.end(), {"-o", "runner"});
  const SandboxResult r = tools.run(link, scratch, request.compile_seconds, 256 << 10);
  result.log += r.output;
  if (r.kind != ExitKind::Ok) return failed(result, tool_failure(r, "Linking"), elapsed());

  result.ok = true;
  result.runner_path = cache_store(request.cache_dir, full_stamp, scratch + "/runner", "runner");
  result.seconds = elapsed();
  return result;
}

}  // namespace effml::grader
