// Hostile program: writes "first line", then argv[1] bytes (default 1 GiB) of 'x' lines, then
// "last line" to stdout, and exits 0.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

static bool write_all(const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, data, n);
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

int main(int argc, char** argv) {
  int64_t total = argc > 1 ? std::atoll(argv[1]) : (int64_t{1} << 30);
  static char block[65536];
  std::memset(block, 'x', sizeof block);
  for (size_t i = 63; i < sizeof block; i += 64) block[i] = '\n';
  if (!write_all("first line\n", 11)) return 2;
  for (int64_t left = total; left > 0;) {
    size_t n = left < int64_t(sizeof block) ? static_cast<size_t>(left) : sizeof block;
    if (!write_all(block, n)) return 2;
    left -= static_cast<int64_t>(n);
  }
  return write_all("\nlast line\n", 11) ? 0 : 2;
}
