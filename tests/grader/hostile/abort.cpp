// Hostile program: calls std::abort (SIGABRT), as a failed assertion would.
#include <cstdio>
#include <cstdlib>

int main() {
  std::fprintf(stderr, "about to abort\n");
  std::abort();
}
