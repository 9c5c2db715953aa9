// Hostile program: forks a grandchild that leaves the process group with setsid(), ignores
// SIGTERM and SIGHUP, creates the file "orphan.started" in the working directory and sleeps
// forever. The parent waits for that file (at most 5 s), then exits 0. Any extra arguments only
// mark the processes so that a test can find them in /proc.
#include <csignal>
#include <cstdio>
#include <unistd.h>

int main() {
  pid_t pid = fork();
  if (pid < 0) return 2;
  if (pid == 0) {
    setsid();
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGHUP, SIG_IGN);
    if (std::FILE* f = std::fopen("orphan.started", "w")) {
      std::fprintf(f, "%d\n", static_cast<int>(getpid()));
      std::fclose(f);
    }
    for (;;) pause();
  }
  for (int i = 0; i < 500; ++i) {
    if (access("orphan.started", F_OK) == 0) return 0;
    usleep(10000);
  }
  return 3;
}
