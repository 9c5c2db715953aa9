// Hostile program: every process forks forever. Each process that starts appends one byte to
// the file named by argv[1], so a test can count how many the process limit let through.
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char** argv) {
  const char* log = argc > 1 ? argv[1] : "forks.log";
  for (;;) {
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ssize_t ignored = write(fd, "x", 1);
        (void)ignored;
        close(fd);
      }
    }
  }
}
