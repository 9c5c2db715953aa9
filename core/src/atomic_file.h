// Writing a whole file so that a crash never leaves a half-written file under its real name
// (shared by the checkpoint and Deep Compression writers). Private to the core.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace effml::detail {

/// A piece of a file: `size` bytes at `data`.
struct FilePiece {
  const void* data = nullptr;
  std::size_t size = 0;
};

/// Writes the pieces in order to `path + ".tmp"`, flushes it to disk, then renames it to `path`.
/// \throws effml::Error "<path>.tmp: cannot create (...)", "<path>.tmp: write failed (...)" or
///         "<path>: cannot rename <path>.tmp to it (...)"; the temporary file is removed
void write_file_atomically(const std::string& path, const std::vector<FilePiece>& pieces);

}  // namespace effml::detail
