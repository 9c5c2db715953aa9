// Hostile program: spins on the CPU forever.
#include <cstdint>

int main() {
  volatile uint64_t counter = 0;
  for (;;) counter = counter + 1;
}
