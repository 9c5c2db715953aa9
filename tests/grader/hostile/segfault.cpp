// Hostile program: writes through a null pointer (SIGSEGV).
#include <cstdio>

int main() {
  std::fprintf(stderr, "about to write through a null pointer\n");
  volatile int* p = nullptr;
  *p = 42;
  return 0;
}
