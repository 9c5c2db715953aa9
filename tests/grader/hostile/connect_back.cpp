// Hostile program: connects to 127.0.0.1 on the port given as argv[1]. Prints "connected" and
// exits 0, or prints "connect failed: <error>" and exits 3.
#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    std::printf("connect failed: socket: %s\n", std::strerror(errno));
    return 3;
  }
  sockaddr_in addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::printf("connect failed: %s\n", std::strerror(errno));
    return 3;
  }
  std::printf("connected\n");
  close(fd);
  return 0;
}
