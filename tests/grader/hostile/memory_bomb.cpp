// Hostile program: allocates and touches 100 GB in 64 MiB chunks (each page is written, so the
// memory is really used, not only reserved).
#include <cstddef>
#include <cstdio>
#include <vector>

int main() {
  const size_t chunk = size_t{64} << 20;
  const size_t total = size_t{100} << 30;
  std::vector<char*> kept;
  for (size_t used = 0; used < total; used += chunk) {
    char* block = new char[chunk];
    for (size_t i = 0; i < chunk; i += 4096) static_cast<volatile char*>(block)[i] = 1;
    kept.push_back(block);
  }
  std::printf("allocated %zu chunks\n", kept.size());
  return 0;
}
