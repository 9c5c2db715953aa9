#include "atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "effml/error.h"

namespace effml::detail {

void write_file_atomically(const std::string& path, const std::vector<FilePiece>& pieces) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(tmp + ": cannot create (" + std::strerror(errno) + ")");
  bool ok = true;
  for (const FilePiece& p : pieces) {
    ok = ok && (p.size == 0 || std::fwrite(p.data, 1, p.size, f) == p.size);
  }
  // Flushed to disk before the rename, so the new name never points at missing data.
  ok = ok && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  const int write_errno = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    throw Error(tmp + ": write failed (" + std::strerror(write_errno) + ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename " + tmp + " to it (" + std::strerror(e) + ")");
  }
}

}  // namespace effml::detail
