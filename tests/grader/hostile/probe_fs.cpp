// Tries file-system operations given as pairs of arguments and prints one line each:
//   read PATH   prints "read PATH: <first line>" or "read PATH: FAILED <error>"
//   write PATH  prints "write PATH: ok" or "write PATH: FAILED <error>"
//   list PATH   prints "list PATH: <names, sorted, space-separated>" (without . and ..) or
//               "list PATH: FAILED <error>"
// Exits with the number of failed operations.
#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

// Returns false (errno set) when the directory cannot be opened.
bool list_directory(const char* path, std::vector<std::string>& names) {
  DIR* dir = ::opendir(path);
  if (dir == nullptr) return false;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return true;
}

int main(int argc, char** argv) {
  int failed = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string op = argv[i];
    const char* path = argv[i + 1];
    if (op == "list") {
      std::vector<std::string> names;
      if (!list_directory(path, names)) {
        std::printf("list %s: FAILED %s\n", path, std::strerror(errno));
        ++failed;
        continue;
      }
      std::string joined;
      for (const std::string& name : names) joined += (joined.empty() ? "" : " ") + name;
      std::printf("list %s: %s\n", path, joined.c_str());
      continue;
    }
    std::FILE* f = std::fopen(path, op == "write" ? "w" : "r");
    if (f == nullptr) {
      std::printf("%s %s: FAILED %s\n", op.c_str(), path, std::strerror(errno));
      ++failed;
      continue;
    }
    if (op == "write") {
      bool ok = std::fputs("written\n", f) >= 0;
      ok = std::fclose(f) == 0 && ok;
      std::printf("write %s: %s\n", path, ok ? "ok" : "FAILED close");
      if (!ok) ++failed;
    } else {
      char line[256] = {0};
      if (std::fgets(line, sizeof line, f) == nullptr) line[0] = '\0';
      std::fclose(f);
      std::printf("read %s: %s", path, line);
      if (line[0] == '\0' || line[std::strlen(line) - 1] != '\n') std::printf("\n");
    }
  }
  return failed;
}
