// File-system and text helpers of the grader (see files.h).
#include "effml/grader/files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "effml/error.h"

namespace effml::grader {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open for reading: " + std::strerror(errno));
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) throw Error(path + ": read error");
  return os.str();
}

void write_file(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path + ": cannot open for writing: " + std::strerror(errno));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) throw Error(path + ": write error (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename the written file into place: " + why);
  }
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec && !is_dir(path)) throw Error(path + ": cannot create folder: " + ec.message());
}

void remove_tree(const std::string& path) noexcept {
  std::error_code ec;
  fs::remove_all(path, ec);
}

std::string make_temp_dir(const std::string& parent, const std::string& prefix) {
  std::string pattern = parent + "/" + prefix + "XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw Error(parent + ": cannot create a temporary folder: " + std::strerror(errno));
  }
  ::chmod(pattern.c_str(), 0755);
  return pattern;
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  if (ec) p = path;
  std::string out = p.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

bool is_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

bool is_plain_file(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void link_or_copy(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::remove(to, ec);
  if (::link(from.c_str(), to.c_str()) == 0) return;
  copy_file(from, to);
}

void copy_file(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::remove(to, ec);
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) throw Error("cannot copy " + from + " to " + to + ": " + ec.message());
  fs::permissions(to, fs::status(from).permissions(), ec);
}

uint64_t fnv1a64(const std::string& data, uint64_t seed) {
  uint64_t h = seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string hex64(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::string first_lines(const std::string& text, int max_lines, std::size_t max_line_chars) {
  const std::vector<std::string> lines = split_lines(trim_right(text));
  std::string out;
  const std::size_t keep = std::min(lines.size(), static_cast<std::size_t>(std::max(max_lines, 0)));
  for (std::size_t i = 0; i < keep; ++i) {
    if (lines[i].size() > max_line_chars) {
      out += lines[i].substr(0, max_line_chars) + " [...]\n";
    } else {
      out += lines[i] + "\n";
    }
  }
  if (lines.size() > keep) {
    out += "[... " + std::to_string(lines.size() - keep) + " more lines]\n";
  }
  return trim_right(out);
}

std::string trim_right(const std::string& text) {
  std::size_t end = text.size();
  while (end > 0 && (text[end - 1] == ' ' || text[end - 1] == '\n' || text[end - 1] == '\r' ||
                     text[end - 1] == '\t')) {
    --end;
  }
  return text.substr(0, end);
}

}  // namespace effml::grader
