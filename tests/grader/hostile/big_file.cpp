// Hostile program: writes a 2 GB file named big.bin in its working directory, 1 MiB at a time.
#include <cstdio>
#include <vector>

int main() {
  std::FILE* f = std::fopen("big.bin", "wb");
  if (f == nullptr) {
    std::perror("big.bin");
    return 2;
  }
  std::vector<char> block(size_t{1} << 20, 'x');
  for (int i = 0; i < 2048; ++i) {
    if (std::fwrite(block.data(), 1, block.size(), f) != block.size()) {
      std::perror("write");
      return 3;
    }
  }
  std::fclose(f);
  std::printf("wrote 2 GB\n");
  return 0;
}
