// Sandboxed child-process runner. See sandbox.h for the containment layers and what is lost
// without bubblewrap.
//
// Process tree of one run:
//
//   grader ── monitor ── program                       (without bubblewrap)
//   grader ── monitor ── bwrap ── bwrap (PID 1) ── program   (with it)
//
// The monitor is a forked copy of the grader that never execs. It is a child subreaper
// (PR_SET_CHILD_SUBREAPER): every process of the run that loses its parent, a grandchild that
// called setsid() included, is re-parented to it. It waits for the program, then kills and reaps
// whatever is left, and exits only when no process of the run remains. It reports the program's
// wait status and the CPU time and peak memory of all of them (getrusage of its reaped children)
// through a pipe. The grader ends a run early (deadline, output flood) with SIGUSR1 to the
// monitor, which then kills everything it has; SIGUSR1 is also the monitor's parent-death signal.
#include "effml/grader/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "effml/error.h"

namespace effml::grader {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kDefaultPath = "/usr/local/bin:/usr/bin:/bin";
// Bytes kept from the end of an output that overflowed the cap: the crash message is there.
constexpr size_t kTailBytes = 4096;
// The child is killed once it has written this many times the output cap.
constexpr int64_t kKillOutputFactor = 100;
// Descriptor, in the program's process, of the pipe that reports a failure between fork and exec
// (close-on-exec, so a successful exec closes it).
constexpr int kErrorFd = 3;
// Descriptor of the report pipe in the monitor.
constexpr int kReportFd = 3;
// Parent-side descriptors are moved to at least this number so that dup2 onto 0..3 in a child
// never overwrites one of them.
constexpr int kHighFd = 10;
// How long the grader waits for the monitor to clear a run it asked to end, before it kills the
// monitor itself.
constexpr int kTerminateGraceMs = 5000;
// The grader's request to the monitor: end the run now.
constexpr int kTerminateSignal = SIGUSR1;

// ---------------------------------------------------------------------------------------------
// Small system helpers (parent side).

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

std::string errno_text(int err) { return std::strerror(err); }

// Moves a close-on-exec descriptor to kHighFd or above.
UniqueFd move_high(int fd) {
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, kHighFd);
  int saved = errno;
  ::close(fd);
  errno = saved;
  return UniqueFd(high);
}

// A close-on-exec pipe with both ends at kHighFd or above. Returns false on failure.
bool make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  read_end = move_high(fds[0]);
  write_end = move_high(fds[1]);
  return read_end.valid() && write_end.valid();
}

int pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

// True once `pid` (our child) has exited; leaves it a zombie so its pid and process-group id
// stay reserved until it is reaped.
bool has_exited(pid_t pid) {
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno == ECHILD;
  }
  return info.si_pid != 0;
}

// Waits up to `timeout_ms` for our child `pid` to exit (without reaping it). True if it did.
bool wait_exit(pid_t pid, int pidfd, int timeout_ms) {
  const Clock::time_point end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!has_exited(pid)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{pidfd, POLLIN, 0};
    if (pidfd >= 0) {
      ::poll(&p, 1, static_cast<int>(left));
    } else {
      ::poll(nullptr, 0, static_cast<int>(std::min<int64_t>(left, 10)));
    }
  }
  return true;
}

std::vector<std::string> split_path_list(const std::string& list) {
  std::vector<std::string> parts;
  std::stringstream ss(list);
  std::string part;
  while (std::getline(ss, part, ':')) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

// Resolves a program name the way execvp would, with the given PATH, into an absolute path (a
// relative path is taken from the grader's working directory). "" when not found.
std::string resolve_program(const std::string& name, const std::string& path_list) {
  if (name.find('/') != std::string::npos) return fs::absolute(name).string();
  for (const std::string& dir : split_path_list(path_list)) {
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// Tasks (processes and threads) whose real uid is `uid`, the quantity RLIMIT_NPROC bounds.
// Plain reads rather than streams: this runs before every sandboxed run (about 1.5 ms for 140
// processes).
int64_t count_tasks_of_uid(uid_t uid) {
  int64_t total = 0;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return 0;
  char path[300];
  char status[8192];
  while (dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    std::snprintf(path, sizeof path, "/proc/%s/status", entry->d_name);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // the process has just ended
    ssize_t n = ::read(fd, status, sizeof status - 1);
    ::close(fd);
    if (n <= 0) continue;
    status[n] = '\0';
    const char* uid_line = std::strstr(status, "\nUid:");
    const char* threads_line = std::strstr(status, "\nThreads:");
    if (uid_line != nullptr && std::strtoul(uid_line + 5, nullptr, 10) == uid) {
      total += threads_line != nullptr ? std::strtoll(threads_line + 9, nullptr, 10) : 1;
    }
  }
  ::closedir(proc);
  return total;
}

// Hands the workdir tree to the child's user so that it can write there after dropping root.
// Symbolic links are not followed, and a file with more than one hard link is left alone: it may
// be a link that an earlier run planted to a file outside the workdir.
std::string give_tree_to(const fs::path& root, uid_t uid, gid_t gid) {
  auto give = [&](const fs::path& path) -> std::string {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return path.string() + ": " + errno_text(errno);
    if (st.st_uid == uid && st.st_gid == gid) return "";
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) return "";
    if (::lchown(path.c_str(), uid, gid) != 0) return path.string() + ": " + errno_text(errno);
    return "";
  };
  std::string problem = give(root);
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  for (; problem.empty() && !ec && it != end; it.increment(ec)) problem = give(it->path());
  if (problem.empty() && ec) problem = root.string() + ": " + ec.message();
  return problem;
}

// True when `path` is `dir` or lies below it (both canonical).
bool is_within(const fs::path& path, const fs::path& dir) {
  auto p = path.begin();
  for (auto d = dir.begin(); d != dir.end(); ++d, ++p) {
    if (p == path.end() || *p != *d) return false;
  }
  return true;
}

size_t path_depth(const fs::path& path) {
  return static_cast<size_t>(std::distance(path.begin(), path.end()));
}

// Three significant digits below 100 ("1.5", "6.25"), whole numbers above ("512", "3600").
std::string format_number(double value) {
  char buf[32];
  if (value >= 100) {
    std::snprintf(buf, sizeof buf, "%.0f", value);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", value);
  }
  return buf;
}

std::string format_seconds(double seconds) { return format_number(seconds) + " s"; }

std::string format_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (int64_t{1} << 30)) return format_number(b / (1 << 30)) + " GiB";
  if (bytes >= (int64_t{1} << 20)) return format_number(b / (1 << 20)) + " MiB";
  if (bytes >= (int64_t{1} << 10)) return format_number(b / (1 << 10)) + " KiB";
  return std::to_string(bytes) + " bytes";
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGSYS: return "SIGSYS";
    default: return "signal " + std::to_string(sig);
  }
}

std::string signal_meaning(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "segmentation fault: an invalid memory access, such as an index out of bounds or a "
             "null pointer";
    case SIGABRT: return "abort: an uncaught exception or a failed assertion";
    case SIGFPE: return "arithmetic error, such as an integer division by zero";
    case SIGBUS: return "bus error: an invalid memory access";
    case SIGILL: return "illegal instruction";
    case SIGTRAP: return "trap";
    case SIGKILL: return "killed, for example by the system when memory ran out";
    case SIGTERM: return "asked to terminate";
    case SIGPIPE: return "broken pipe";
    case SIGSYS: return "bad system call";
    default: return "";
  }
}

// Keeps the first `cap` bytes and the last kTailBytes of everything added.
class OutputSink {
 public:
  explicit OutputSink(int64_t cap) : cap_(static_cast<size_t>(cap)) {}

  void add(const char* data, size_t n) {
    total_ += static_cast<int64_t>(n);
    size_t to_head = std::min(n, cap_ - head_.size());
    head_.append(data, to_head);
    tail_.append(data + to_head, n - to_head);
    if (tail_.size() > 4 * kTailBytes) tail_.erase(0, tail_.size() - kTailBytes);
  }

  int64_t total() const { return total_; }

  // The kept text; sets `truncated` when bytes were dropped.
  std::string finish(bool& truncated) const {
    size_t keep = std::min(tail_.size(), kTailBytes);
    int64_t dropped = total_ - static_cast<int64_t>(head_.size() + keep);
    truncated = dropped > 0;
    std::string text = head_;
    if (truncated) {
      text += "\n[... " + std::to_string(dropped) + " bytes of output dropped ...]\n";
    }
    text.append(tail_, tail_.size() - keep, keep);
    return text;
  }

 private:
  size_t cap_;
  std::string head_;
  std::string tail_;
  int64_t total_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The forked processes. Only async-signal-safe calls between fork and exec: the grader may have
// threads, and a forked copy of a threaded program must not take locks (no malloc, no stdio).

enum class Stage : int {
  kFork,
  kStdio,
  kRlimit,
  kSetgroups,
  kSetgid,
  kSetuid,
  kParentGone,
  kChdir,
  kWorkdirAccess,
  kProgramAccess,
  kExec
};

struct ChildFailure {
  Stage stage;
  int err;
};

// What the monitor tells the grader when the run is over.
struct MonitorReport {
  int main_reaped;   // 1 when main_status holds the program's (or bwrap's) wait status
  int main_status;
  rusage children;   // all processes of the run, as reaped by the monitor and its descendants
};

struct LimitSetting {
  int resource;
  rlim_t soft;
  rlim_t hard;
};

// Everything the forked processes need, prepared before fork (no allocation after it).
struct ChildPlan {
  std::vector<char*> exec_argv;  // null-terminated
  std::vector<char*> exec_envp;  // null-terminated
  const char* exec_path = nullptr;
  const char* program = nullptr;  // checked for X_OK as the sandbox user
  const char* workdir = nullptr;
  bool plain = true;              // no bubblewrap: chdir here, no_new_privs
  bool change_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t grader = 0;
  int out_fd = -1;
  int error_fd = -1;
  int report_fd = -1;
  std::vector<LimitSetting> limits;
};

[[noreturn]] void child_fail(int fd, Stage stage, int err) {
  ChildFailure failure{stage, err};
  ssize_t ignored = ::write(fd, &failure, sizeof failure);
  (void)ignored;
  ::_exit(127);
}

// The program's process: limits, user, descriptors, then exec.
[[noreturn]] void program_main(const ChildPlan& plan, pid_t monitor) {
  ::setpgid(0, 0);

  // Dispositions set to "ignore" and blocked signals survive exec: give the program defaults.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // The failure pipe first, so every later step can report.
  if (::dup3(plan.error_fd, kErrorFd, O_CLOEXEC) < 0) ::_exit(127);
  int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull < 0) child_fail(kErrorFd, Stage::kStdio, errno);
  if (::dup2(devnull, 0) < 0 || ::dup2(plan.out_fd, 1) < 0 || ::dup2(plan.out_fd, 2) < 0) {
    child_fail(kErrorFd, Stage::kStdio, errno);
  }
  if (::syscall(SYS_close_range, kErrorFd + 1, ~0U, 0) != 0) {
    for (int fd = kErrorFd + 1; fd < 65536; ++fd) ::close(fd);
  }

  for (const LimitSetting& limit : plan.limits) {
    rlimit value{limit.soft, limit.hard};
    if (::setrlimit(limit.resource, &value) != 0) child_fail(kErrorFd, Stage::kRlimit, errno);
  }

  // Raw system calls change only this thread's credentials, which in a forked child of a
  // threaded program is what we want (glibc's wrappers would try to reach the parent's threads).
  if (plan.change_user) {
    if (::syscall(SYS_setgroups, 0, nullptr) != 0) child_fail(kErrorFd, Stage::kSetgroups, errno);
    if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) {
      child_fail(kErrorFd, Stage::kSetgid, errno);
    }
    if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) {
      child_fail(kErrorFd, Stage::kSetuid, errno);
    }
  }
  // After the change of user, which clears it; bubblewrap is not set-uid, so exec keeps it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != monitor) child_fail(kErrorFd, Stage::kParentGone, ESRCH);

  if (plan.plain) {
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (::chdir(plan.workdir) != 0) child_fail(kErrorFd, Stage::kChdir, errno);
  }
  if (::access(plan.workdir, W_OK | X_OK) != 0) {
    child_fail(kErrorFd, Stage::kWorkdirAccess, errno);
  }
  if (::access(plan.program, X_OK) != 0) child_fail(kErrorFd, Stage::kProgramAccess, errno);

  ::execve(plan.exec_path, plan.exec_argv.data(), plan.exec_envp.data());
  child_fail(kErrorFd, Stage::kExec, errno);
}

// SIGKILL to every direct child of the monitor (and to the program's group while the program
// is not reaped, so its group id cannot have been reused). Orphans of the killed are re-parented
// to the monitor and killed on a later call. Returns false when the children cannot be listed.
bool kill_children(pid_t main_group) {
  if (main_group > 0) ::kill(-main_group, SIGKILL);
  int fd = ::open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];
  long pid = 0;
  bool in_number = false;
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] >= '0' && buf[i] <= '9') {
        pid = pid * 10 + (buf[i] - '0');
        in_number = true;
      } else if (in_number) {
        ::kill(static_cast<pid_t>(pid), SIGKILL);
        pid = 0;
        in_number = false;
      }
    }
  }
  if (in_number) ::kill(static_cast<pid_t>(pid), SIGKILL);
  ::close(fd);
  return true;
}

// The monitor (see the top of this file). Its signal mask arrives with kTerminateSignal blocked.
[[noreturn]] void monitor_main(const ChildPlan& plan) {
  ::setpgid(0, 0);
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGCHLD, &dfl, nullptr);  // SIG_IGN would let the kernel reap without us
  struct sigaction ignore = dfl;
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, nullptr);  // the grader may be gone when the report is written
  sigset_t watched;
  sigemptyset(&watched);
  sigaddset(&watched, SIGCHLD);
  sigaddset(&watched, kTerminateSignal);
  ::sigprocmask(SIG_BLOCK, &watched, nullptr);

  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ::prctl(PR_SET_PDEATHSIG, kTerminateSignal);
  bool terminate = ::getppid() != plan.grader;

  const pid_t monitor = ::getpid();
  const pid_t main_pid = ::fork();
  if (main_pid == 0) program_main(plan, monitor);
  MonitorReport report;
  std::memset(&report, 0, sizeof report);
  if (main_pid < 0) {
    ChildFailure failure{Stage::kFork, errno};
    ssize_t ignored = ::write(plan.error_fd, &failure, sizeof failure);
    (void)ignored;
  }
  // Keep only the report pipe: the grader's end of file on the output and failure pipes must not
  // wait for this process.
  if (::dup2(plan.report_fd, kReportFd) < 0) ::_exit(1);
  if (::syscall(SYS_close_range, kReportFd + 1, ~0U, 0) != 0) {
    for (int fd = kReportFd + 1; fd < 65536; ++fd) ::close(fd);
  }

  bool main_running = main_pid > 0;
  for (;;) {
    // Reap all that has ended.
    pid_t pid;
    int status;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid == main_pid) {
        report.main_reaped = 1;
        report.main_status = status;
        main_running = false;
      }
    }
    if (pid < 0 && errno == ECHILD) break;  // nothing of the run is left
    if (terminate || !main_running) {
      if (!kill_children(main_running ? main_pid : 0) && !main_running) break;
    }
    // Both watched signals are blocked, so one that arrived since the reaping above is pending
    // and returns at once: no wake-up is lost.
    if (::sigwaitinfo(&watched, nullptr) == kTerminateSignal) terminate = true;
  }
  ::getrusage(RUSAGE_CHILDREN, &report.children);
  ssize_t ignored = ::write(kReportFd, &report, sizeof report);
  (void)ignored;
  ::_exit(0);
}

std::string describe_failure(const ChildFailure& failure, const ChildPlan& plan) {
  const std::string why = errno_text(failure.err);
  const std::string who = "uid " + std::to_string(plan.uid);
  switch (failure.stage) {
    case Stage::kFork: return "fork failed: " + why;
    case Stage::kStdio: return "redirecting standard streams failed: " + why;
    case Stage::kRlimit: return "setting a resource limit failed: " + why;
    case Stage::kSetgroups:
    case Stage::kSetgid:
    case Stage::kSetuid: return "switching to " + who + " failed: " + why;
    case Stage::kParentGone: return "the grader exited while the child was starting";
    case Stage::kChdir:
    case Stage::kWorkdirAccess:
      return std::string("the workdir ") + plan.workdir + " is not writable by " + who + ": " + why;
    case Stage::kProgramAccess:
      return std::string("cannot execute ") + plan.program + " as " + who + ": " + why;
    case Stage::kExec: return std::string("exec of ") + plan.exec_path + " failed: " + why;
  }
  return why;
}

// ---------------------------------------------------------------------------------------------
// bubblewrap command line.
//
// bubblewrap applies its mount options in argument order, each on top of what the earlier ones
// made. The view is therefore written as one list sorted from the shallowest path to the deepest,
// with the sandbox's own mounts (the read-only host `/`, then a private `/dev`, `/proc` and `/tmp`)
// first among equals. So the private /tmp is in place before a workdir or read-only path under
// /tmp is bound on top of it (bubblewrap creates the directories above such a path, empty, in the
// private /tmp), a read-only path inside a hidden one stays visible, and a hidden path inside the
// workdir or a read-only path is covered after that path is bound.

struct BwrapMount {
  enum Kind {
    kHostRoot,     // the host's `/`, read-only
    kPrivateDev,   // a minimal /dev of the sandbox's own
    kPrivateProc,  // the /proc of the sandbox's PID namespace
    kPrivateTmp,   // an empty tmpfs, SandboxLimits::file_bytes large
    kWritable,     // the workdir
    kReadOnly,     // SandboxOptions::readonly_paths and the program
    kHiddenDir,    // covered by an empty read-only tmpfs
    kHiddenFile    // covered by a device node that cannot be opened (binds are nodev)
  } kind;
  fs::path path;
};

// True for a mount that shows nothing of the host below it.
bool shows_nothing_of_host(BwrapMount::Kind kind) {
  return kind == BwrapMount::kPrivateDev || kind == BwrapMount::kPrivateProc ||
         kind == BwrapMount::kPrivateTmp || kind == BwrapMount::kHiddenDir ||
         kind == BwrapMount::kHiddenFile;
}

// The mounts of the sandbox's view in the order bubblewrap must apply them. A hidden path that the
// view would not show anyway (under the private /tmp and outside every bound path, say) gets no
// mount: covering it would only create its mount point, and so reveal its name, in the private
// /tmp.
std::vector<BwrapMount> bwrap_mounts(const SandboxOptions& options, const std::string& program,
                                     const fs::path& workdir) {
  std::vector<BwrapMount> mounts = {{BwrapMount::kHostRoot, "/"},
                                    {BwrapMount::kPrivateDev, "/dev"},
                                    {BwrapMount::kPrivateProc, "/proc"},
                                    {BwrapMount::kPrivateTmp, "/tmp"},
                                    {BwrapMount::kWritable, workdir}};
  for (const std::string& p : options.readonly_paths) {
    mounts.push_back({BwrapMount::kReadOnly, fs::canonical(p)});
  }
  std::error_code ec;
  fs::path program_path = fs::canonical(program, ec);
  if (!ec) mounts.push_back({BwrapMount::kReadOnly, program_path});
  for (const std::string& p : options.hidden_paths) {
    fs::path hidden = fs::canonical(p, ec);
    if (ec) continue;  // nothing there to hide
    bool dir = fs::is_directory(hidden, ec);
    mounts.push_back({dir ? BwrapMount::kHiddenDir : BwrapMount::kHiddenFile, hidden});
  }
  // Stable: at equal depth the sandbox's own mounts, listed first, stay first.
  std::stable_sort(mounts.begin(), mounts.end(), [](const BwrapMount& a, const BwrapMount& b) {
    return path_depth(a.path) < path_depth(b.path);
  });

  std::vector<BwrapMount> ordered;
  for (const BwrapMount& m : mounts) {
    if (m.kind == BwrapMount::kHiddenDir || m.kind == BwrapMount::kHiddenFile) {
      // What shows at this path is decided by the deepest mount so far that contains it (the
      // later one of two at the same path). The host's `/` contains every path.
      const BwrapMount* cover = &ordered.front();
      for (const BwrapMount& earlier : ordered) {
        if (is_within(m.path, earlier.path) &&
            path_depth(earlier.path) >= path_depth(cover->path)) {
          cover = &earlier;
        }
      }
      if (shows_nothing_of_host(cover->kind)) continue;
    }
    ordered.push_back(m);
  }
  return ordered;
}

std::vector<std::string> bwrap_command(const std::string& bwrap, const SandboxOptions& options,
                                       const SandboxLimits& limits, const std::string& program,
                                       const fs::path& workdir) {
  std::vector<std::string> cmd = {bwrap, "--unshare-all", "--die-with-parent", "--new-session",
                                  "--cap-drop", "ALL"};
  std::vector<std::string> remount;
  for (const BwrapMount& m : bwrap_mounts(options, program, workdir)) {
    const std::string p = m.path.string();
    switch (m.kind) {
      case BwrapMount::kHostRoot: cmd.insert(cmd.end(), {"--ro-bind", p, p}); break;
      case BwrapMount::kPrivateDev: cmd.insert(cmd.end(), {"--dev", p}); break;
      case BwrapMount::kPrivateProc: cmd.insert(cmd.end(), {"--proc", p}); break;
      case BwrapMount::kPrivateTmp:
        if (limits.file_bytes > 0) {
          cmd.insert(cmd.end(), {"--size", std::to_string(limits.file_bytes)});
        }
        cmd.insert(cmd.end(), {"--tmpfs", p});
        break;
      case BwrapMount::kWritable: cmd.insert(cmd.end(), {"--bind", p, p}); break;
      case BwrapMount::kReadOnly: cmd.insert(cmd.end(), {"--ro-bind", p, p}); break;
      case BwrapMount::kHiddenFile: cmd.insert(cmd.end(), {"--ro-bind", "/dev/null", p}); break;
      case BwrapMount::kHiddenDir:
        cmd.insert(cmd.end(), {"--size", "4096", "--tmpfs", p});
        remount.push_back(p);
        break;
    }
  }
  // Read-only only at the end: mounts below a hidden path need their mount points created first.
  for (const std::string& p : remount) cmd.insert(cmd.end(), {"--remount-ro", p});
  cmd.insert(cmd.end(), {"--chdir", workdir.string(), "--"});
  cmd.push_back(program);
  cmd.insert(cmd.end(), options.argv.begin() + 1, options.argv.end());
  return cmd;
}

// ---------------------------------------------------------------------------------------------

SandboxResult start_failed(const SandboxLimits& limits, bool bwrap, const std::string& why) {
  SandboxResult r;
  r.kind = ExitKind::StartFailed;
  r.limits = limits;
  r.sandboxed_with_bwrap = bwrap;
  r.start_error = why;
  return r;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

rlim_t rlim_of(double value) { return static_cast<rlim_t>(std::ceil(value)); }

double seconds_of(const timeval& t) {
  return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec);
}

// Reads the whole struct from a blocking pipe whose writer has exited; false if it is not there.
template <typename T>
bool read_struct(int fd, T& value) {
  ssize_t got;
  do {
    got = ::read(fd, &value, sizeof value);
  } while (got < 0 && errno == EINTR);
  return got == static_cast<ssize_t>(sizeof value);
}

// Sets kind, exit_code and signal from the program's wait status and what stopped it.
void classify(SandboxResult& r, int status, bool stopped_at_deadline, bool stopped_for_output) {
  const SandboxLimits& limits = r.limits;
  if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  } else {
    r.exit_code = WEXITSTATUS(status);
    // bubblewrap reports a program killed by signal N as exit code 128 + N, as shells do.
    if (r.sandboxed_with_bwrap && r.exit_code > 128 && r.exit_code < 128 + NSIG) {
      r.signal = r.exit_code - 128;
      r.exit_code = -1;
    }
  }
  const bool says_bad_alloc = r.output.find("bad_alloc") != std::string::npos;
  // A crash with most of the address space resident is taken as a failed allocation that the
  // program did not check (C code writing through the null pointer malloc returned).
  const bool memory_crash =
      (r.signal == SIGSEGV || r.signal == SIGBUS || r.signal == SIGABRT || r.signal == SIGKILL) &&
      limits.memory_bytes > 0 && r.max_rss_bytes >= limits.memory_bytes / 4 * 3;
  if (stopped_at_deadline) {
    r.kind = ExitKind::Timeout;
  } else if (stopped_for_output) {
    r.kind = ExitKind::OutputLimit;
  } else if (r.sandboxed_with_bwrap && r.exit_code == 1 && r.output.rfind("bwrap: ", 0) == 0) {
    r.kind = ExitKind::StartFailed;
    r.start_error = r.output.substr(0, r.output.find('\n'));
  } else if (r.signal == SIGXCPU ||
             (r.signal == SIGKILL && limits.cpu_seconds > 0 &&
              r.cpu_seconds >= static_cast<double>(rlim_of(limits.cpu_seconds)))) {
    r.kind = ExitKind::CpuLimit;  // SIGKILL: the hard limit, one second after SIGXCPU
  } else if (r.signal == SIGXFSZ) {
    r.kind = ExitKind::FileSizeLimit;
  } else if ((r.signal != 0 || r.exit_code != 0) && (says_bad_alloc || memory_crash)) {
    r.kind = ExitKind::MemoryLimit;
  } else if (r.signal != 0) {
    r.kind = ExitKind::Signal;
  } else if (r.exit_code != 0) {
    r.kind = ExitKind::NonZeroExit;
  } else {
    r.kind = ExitKind::Ok;
  }
}

SandboxResult run_impl(const SandboxOptions& options, const SandboxLimits& limits,
                       const std::string& bwrap) {
  const bool use_bwrap = !bwrap.empty();

  const fs::path workdir = fs::canonical(options.workdir);
  std::map<std::string, std::string> env = options.env;
  if (env.find("PATH") == env.end()) env["PATH"] = kDefaultPath;
  if (env.find("HOME") == env.end()) env["HOME"] = workdir.string();
  const std::string program = resolve_program(options.argv[0], env["PATH"]);
  if (program.empty()) {
    return start_failed(limits, use_bwrap,
                        "program not found: " + options.argv[0] + " (PATH=" + env["PATH"] + ")");
  }

  ChildPlan plan;
  plan.plain = !use_bwrap;
  plan.grader = ::getpid();
  plan.change_user = ::geteuid() == 0;
  plan.uid = plan.change_user ? options.run_as_uid : ::getuid();
  plan.gid = plan.change_user ? options.run_as_gid : ::getgid();
  if (plan.change_user) {
    std::string problem = give_tree_to(workdir, plan.uid, plan.gid);
    if (!problem.empty()) {
      return start_failed(limits, use_bwrap,
                          "cannot hand the workdir to uid " + std::to_string(plan.uid) + ": " +
                              problem);
    }
  }

  plan.limits.push_back({RLIMIT_CORE, 0, 0});
  if (limits.cpu_seconds > 0) {
    rlim_t soft = rlim_of(limits.cpu_seconds);
    plan.limits.push_back({RLIMIT_CPU, soft, soft + 1});
  }
  if (limits.memory_bytes > 0) {
    rlim_t v = static_cast<rlim_t>(limits.memory_bytes);
    plan.limits.push_back({RLIMIT_AS, v, v});
  }
  if (limits.file_bytes > 0) {
    rlim_t v = static_cast<rlim_t>(limits.file_bytes);
    plan.limits.push_back({RLIMIT_FSIZE, v, v});
  }
  if (limits.processes > 0) {
    // "This many more": the count is machine-wide per user (see sandbox.h).
    rlim_t v = static_cast<rlim_t>(count_tasks_of_uid(plan.uid) + limits.processes);
    plan.limits.push_back({RLIMIT_NPROC, v, v});
  }

  std::vector<std::string> exec_args =
      use_bwrap ? bwrap_command(bwrap, options, limits, program, workdir) : options.argv;
  std::vector<std::string> env_strings;
  for (const auto& [key, value] : env) env_strings.push_back(key + "=" + value);
  const std::string exec_path = use_bwrap ? bwrap : program;
  const std::string workdir_text = workdir.string();
  plan.exec_argv = c_strings(exec_args);
  plan.exec_envp = c_strings(env_strings);
  plan.exec_path = exec_path.c_str();
  plan.program = program.c_str();
  plan.workdir = workdir_text.c_str();

  UniqueFd out_read, out_write, err_read, err_write, report_read, report_write;
  if (!make_pipe(out_read, out_write) || !make_pipe(err_read, err_write) ||
      !make_pipe(report_read, report_write)) {
    return start_failed(limits, use_bwrap, "cannot create a pipe: " + errno_text(errno));
  }
  ::fcntl(out_read.get(), F_SETFL, ::fcntl(out_read.get(), F_GETFL) | O_NONBLOCK);
  plan.out_fd = out_write.get();
  plan.error_fd = err_write.get();
  plan.report_fd = report_write.get();

  // The monitor starts with the terminate signal blocked, so that a request that comes early is
  // queued for it rather than killing it.
  sigset_t terminate_set, saved_mask;
  sigemptyset(&terminate_set);
  sigaddset(&terminate_set, kTerminateSignal);
  ::pthread_sigmask(SIG_BLOCK, &terminate_set, &saved_mask);
  const Clock::time_point start = Clock::now();
  const pid_t monitor = ::fork();
  if (monitor == 0) monitor_main(plan);
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &saved_mask, nullptr);
  if (monitor < 0) return start_failed(limits, use_bwrap, "fork failed: " + errno_text(fork_errno));
  out_write.reset();
  err_write.reset();
  report_write.reset();

  // Either exec succeeded (the pipe closes with no data) or the child says what failed.
  ChildFailure failure{};
  const bool failed_to_start = read_struct(err_read.get(), failure);

  UniqueFd pidfd(pidfd_open(monitor));
  OutputSink sink(limits.output_bytes);
  const int64_t kill_output_at = kKillOutputFactor * limits.output_bytes;
  const Clock::time_point deadline =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(limits.wall_seconds));
  bool stopped_at_deadline = false;
  bool stopped_for_output = false;

  // Reads what is available, at most `max_reads` chunks so the deadline is checked in between.
  auto read_output = [&](int max_reads) {
    char buf[65536];
    for (int i = 0; i < max_reads && out_read.valid(); ++i) {
      ssize_t n = ::read(out_read.get(), buf, sizeof buf);
      if (n > 0) {
        sink.add(buf, static_cast<size_t>(n));
        if (sink.total() > kill_output_at) return;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) out_read.reset();  // every writer is gone
      return;
    }
  };

  // The monitor exits when no process of the run is left.
  while (!has_exited(monitor)) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      stopped_at_deadline = true;
      break;
    }
    auto left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    int timeout_ms = static_cast<int>(std::min<int64_t>(left_ms, INT_MAX));
    if (!pidfd.valid()) timeout_ms = std::min(timeout_ms, 10);  // no pidfd: poll for the exit

    pollfd fds[2];
    int nfds = 0;
    if (out_read.valid()) fds[nfds++] = {out_read.get(), POLLIN, 0};
    if (pidfd.valid()) fds[nfds++] = {pidfd.get(), POLLIN, 0};
    int ready = ::poll(fds, static_cast<nfds_t>(nfds), timeout_ms);
    if (ready < 0 && errno != EINTR) break;
    if (out_read.valid() && ready > 0 && fds[0].revents != 0) read_output(16);
    if (sink.total() > kill_output_at) {
      stopped_for_output = true;
      break;
    }
  }

  if (stopped_at_deadline || stopped_for_output) {
    // The monitor kills every process of the run with SIGKILL (never SIGTERM, which a program
    // may ignore) and exits once they are all reaped. Should it not, it is killed itself.
    ::kill(monitor, kTerminateSignal);
    if (!wait_exit(monitor, pidfd.get(), kTerminateGraceMs)) {
      ::kill(-monitor, SIGKILL);
      ::kill(monitor, SIGKILL);
    }
  }
  // Every writer is gone once the monitor has exited, unless the monitor had to be killed: take
  // what is there without waiting for the end of file.
  if (!stopped_for_output) read_output(256);

  int monitor_status = 0;
  rusage monitor_usage;
  std::memset(&monitor_usage, 0, sizeof monitor_usage);
  while (::wait4(monitor, &monitor_status, 0, &monitor_usage) < 0 && errno == EINTR) {
  }
  const Clock::time_point end = Clock::now();
  MonitorReport report;
  std::memset(&report, 0, sizeof report);
  const bool reported = read_struct(report_read.get(), report);

  if (failed_to_start) return start_failed(limits, use_bwrap, describe_failure(failure, plan));

  SandboxResult r;
  r.limits = limits;
  r.sandboxed_with_bwrap = use_bwrap;
  r.wall_seconds = std::chrono::duration<double>(end - start).count();
  const rusage& usage = reported ? report.children : monitor_usage;
  r.cpu_seconds = seconds_of(usage.ru_utime) + seconds_of(usage.ru_stime);
  r.max_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  r.output = sink.finish(r.output_truncated);
  // Without a report (the monitor was killed) the program counts as killed.
  const int status = reported && report.main_reaped ? report.main_status : SIGKILL;
  classify(r, status, stopped_at_deadline, stopped_for_output);
  return r;
}

std::string find_bwrap() {
  const char* path = std::getenv("PATH");
  std::string found = resolve_program("bwrap", path != nullptr ? path : kDefaultPath);
  if (found.empty() && ::access("/usr/bin/bwrap", X_OK) == 0) found = "/usr/bin/bwrap";
  return found;
}

// Runs /bin/true through the full bubblewrap path once; the path of a working bwrap, or "".
std::string working_bwrap() {
  static const std::string cached = []() -> std::string {
    std::string bwrap = find_bwrap();
    if (bwrap.empty()) return "";
    char dir[] = "/tmp/effml-sandbox-probe-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return "";
    SandboxOptions options;
    options.argv = {"true"};
    options.workdir = dir;
    SandboxLimits limits;
    limits.wall_seconds = 10;
    bool ok = false;
    try {
      ok = run_impl(options, limits, bwrap).kind == ExitKind::Ok;
    } catch (const std::exception&) {
      ok = false;
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    return ok ? bwrap : "";
  }();
  return cached;
}

}  // namespace

const char* exit_kind_name(ExitKind kind) {
  switch (kind) {
    case ExitKind::Ok: return "ok";
    case ExitKind::NonZeroExit: return "non_zero_exit";
    case ExitKind::Signal: return "signal";
    case ExitKind::Timeout: return "timeout";
    case ExitKind::CpuLimit: return "cpu_limit";
    case ExitKind::MemoryLimit: return "memory_limit";
    case ExitKind::OutputLimit: return "output_limit";
    case ExitKind::FileSizeLimit: return "file_size_limit";
    case ExitKind::StartFailed: return "start_failed";
  }
  return "unknown";
}

std::string SandboxResult::reason() const {
  switch (kind) {
    case ExitKind::Ok: return "exited normally";
    case ExitKind::NonZeroExit: return "exited with code " + std::to_string(exit_code);
    case ExitKind::Signal: {
      std::string meaning = signal_meaning(signal);
      return "crashed with " + signal_name(signal) +
             (meaning.empty() ? std::string() : " (" + meaning + ")");
    }
    case ExitKind::Timeout:
      return "was killed after the " + format_seconds(limits.wall_seconds) + " time limit";
    case ExitKind::CpuLimit:
      return "was killed after using its " + format_seconds(std::ceil(limits.cpu_seconds)) +
             " of CPU time";
    case ExitKind::MemoryLimit:
      return "ran out of memory (limit " + format_bytes(limits.memory_bytes) + ")";
    case ExitKind::OutputLimit:
      return "was killed for writing more than " +
             format_bytes(kKillOutputFactor * limits.output_bytes) +
             " of output (only the first " + format_bytes(limits.output_bytes) +
             " and the last " + format_bytes(static_cast<int64_t>(kTailBytes)) + " are kept)";
    case ExitKind::FileSizeLimit:
      return "was killed for writing a file larger than the " + format_bytes(limits.file_bytes) +
             " limit";
    case ExitKind::StartFailed: return "could not be started: " + start_error;
  }
  return "ended in an unknown way";
}

SandboxResult run_sandboxed(const SandboxOptions& options, const SandboxLimits& limits) {
  EFFML_CHECK(!options.argv.empty() && !options.argv[0].empty(),
              "run_sandboxed: argv is empty: nothing to run");
  EFFML_CHECK(limits.wall_seconds > 0,
              "run_sandboxed: wall_seconds must be positive, got " << limits.wall_seconds);
  EFFML_CHECK(limits.output_bytes > 0,
              "run_sandboxed: output_bytes must be positive, got " << limits.output_bytes);
  std::error_code ec;
  EFFML_CHECK(!options.workdir.empty() && fs::is_directory(options.workdir, ec),
              "run_sandboxed: workdir '" << options.workdir << "' is not an existing directory");
  const fs::path workdir = fs::canonical(options.workdir);
  for (const std::string& p : options.readonly_paths) {
    EFFML_CHECK(fs::exists(p, ec), "run_sandboxed: read-only path '" << p << "' does not exist");
  }
  for (const std::string& p : options.hidden_paths) {
    fs::path hidden = fs::canonical(p, ec);
    if (ec) continue;
    EFFML_CHECK(!is_within(workdir, hidden), "run_sandboxed: workdir '"
                                                 << workdir.string() << "' lies inside hidden path '"
                                                 << hidden.string() << "'");
  }
  std::string bwrap = options.use_bwrap ? working_bwrap() : std::string();
  return run_impl(options, limits, bwrap);
}

bool bwrap_available() { return !working_bwrap().empty(); }

}  // namespace effml::grader
