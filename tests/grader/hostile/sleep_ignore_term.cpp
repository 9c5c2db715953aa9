// Hostile program: ignores SIGTERM, SIGINT and SIGHUP, then sleeps forever.
#include <csignal>
#include <cstdio>
#include <unistd.h>

int main() {
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGHUP, SIG_IGN);
  std::printf("ignoring SIGTERM\n");
  std::fflush(stdout);
  for (;;) pause();
}
