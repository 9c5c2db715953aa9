/// \file sandbox.h
/// \brief Runs a built student executable as a contained child process.
///
/// Student code never runs in the grader's process. `run_sandboxed` forks, limits the child and
/// execs the program, captures its output, and reports how it ended in words a student can act on.
///
/// **Containment, in layers.**
/// - Always: the program leads its own process group (`setpgid`); resource limits are set before
///   `exec` (CPU seconds, address space, file size, number of processes, no core files); standard
///   input is `/dev/null`; no file descriptor of the grader is inherited; the environment is
///   exactly SandboxOptions::env (plus `PATH` and `HOME` when absent); a wall-clock deadline,
///   enforced with a monotonic clock, ends the run with SIGKILL (never SIGTERM, which a program
///   can ignore).
/// - Always: the program runs under a small monitor process, a forked copy of the grader that is
///   a child subreaper (`PR_SET_CHILD_SUBREAPER`). Every process of the run that loses its parent,
///   including a grandchild that called `setsid()` to leave the process group, is re-parented to
///   the monitor, which kills it once the program has ended (or at the deadline) and exits only
///   when no process of the run is left. So when run_sandboxed returns, nothing the program
///   started is still running. The monitor also dies, taking the run with it, if the grader does.
/// - When the grader runs as root: the program drops to an unprivileged user
///   (SandboxOptions::run_as_uid, `nobody` by default) before `exec`, and the workdir is handed to
///   that user. This is what makes `RLIMIT_NPROC` hold: the kernel does not enforce it for root,
///   and a fork bomb run as root would fill the machine's process table before the deadline.
/// - With bubblewrap (`bwrap`, when bwrap_available()): the program also gets its own PID,
///   network, IPC and UTS namespaces (`--unshare-all`; the network namespace has only a loopback
///   device of its own, so nothing on the host or beyond is reachable), `--new-session`,
///   `--die-with-parent`, and a file system view made of a read-only `/`, a private `/dev`,
///   `/proc` and `/tmp`, the workdir bound writable, SandboxOptions::readonly_paths bound
///   read-only, and each of SandboxOptions::hidden_paths covered: a directory by an empty
///   read-only tmpfs, a file by a device node that cannot be opened. When the program's first
///   process exits, the PID namespace ends and every process in it dies.
/// - The view is built from the shallowest path to the deepest, the private `/dev`, `/proc` and
///   `/tmp` first, so the most specific rule wins wherever the paths lie: a workdir or read-only
///   path under `/tmp` is bound on top of the private `/tmp` (the directories above it appear
///   there, empty, and nothing else of the host's `/tmp`); a read-only path (or the program)
///   inside a hidden directory stays visible; a hidden path inside the workdir or a read-only path
///   stays hidden. A hidden path that the view does not show anyway (under the private `/tmp`
///   outside every bound path, say) is left alone, so not even its name appears.
///
/// **What is lost without bubblewrap.** The network is reachable; the whole file system is
/// visible, with only its permissions (as the unprivileged user, when the grader is root) standing
/// between the program and `reference/` or hidden data; the program can write to `/tmp` and
/// wherever its user may, where only `RLIMIT_FSIZE` bounds each file; it shares the host's `/proc`
/// and PID space (it can see, though not signal, the grader's processes when it runs as another
/// user). Killing every process relies on `/proc/thread-self/children` (Linux 4.2 and later with
/// `CONFIG_PROC_CHILDREN`, as Debian builds it); without that file only the process group is killed.
///
/// **Exit codes under bubblewrap.** bubblewrap reports a program killed by signal N as exit code
/// 128 + N, as shells do; the runner reads it back as the signal, so a program that exits with
/// code 139 on purpose is reported as killed by SIGSEGV. An exit code of 1 with output starting
/// with "bwrap: " is read as bubblewrap failing to set up the sandbox (StartFailed).
///
/// **Process count.** `RLIMIT_NPROC` counts every task (process or thread) of a user on the whole
/// machine. The runner therefore sets it to the number of tasks that the program's user already
/// has plus SandboxLimits::processes, so the limit reads "this many more" whether the program runs
/// as `nobody` or as the student's own user (who may have hundreds of desktop processes). Two of
/// them go to bubblewrap when it is used.
///
/// **Callers must not** set SIGCHLD to `SIG_IGN` (the runner waits for its child by pid), nor
/// rely on SIGUSR1 reaching the thread that calls run_sandboxed (it is blocked around `fork`).
/// run_sandboxed may be called from several threads at once.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace effml::grader {

/// Resource limits of one sandboxed run. A value of 0 or less means "no limit" for the rlimits;
/// `wall_seconds` and `output_bytes` must be positive.
struct SandboxLimits {
  /// Wall-clock time, in seconds, after which every process of the run is killed with SIGKILL.
  double wall_seconds = 60;
  /// CPU time, in seconds, per process (`RLIMIT_CPU`, rounded up to whole seconds): SIGXCPU at the
  /// limit, SIGKILL one second later.
  double cpu_seconds = 60;
  /// Address space, in bytes, per process (`RLIMIT_AS`). An allocation beyond it fails (C++ throws
  /// `std::bad_alloc`).
  int64_t memory_bytes = int64_t{4} << 30;
  /// Largest file, in bytes, that the child may write (`RLIMIT_FSIZE`, SIGXFSZ beyond it). With
  /// bubblewrap it is also the size of the private `/tmp`.
  int64_t file_bytes = int64_t{256} << 20;
  /// How many more processes or threads the child's user may have while it runs (`RLIMIT_NPROC`,
  /// see the file comment).
  int64_t processes = 64;
  /// Bytes of combined stdout and stderr kept in SandboxResult::output. Past it the output is
  /// still read and dropped (so the child never blocks on a full pipe), except its last 4 KiB,
  /// which are kept too; past 100 times this cap the child is killed.
  int64_t output_bytes = int64_t{1} << 20;
};

/// What to run, where, and what it may see.
struct SandboxOptions {
  /// Program and its arguments. `argv[0]` is a path (a relative one is taken from the grader's
  /// working directory), or a name without `/` looked up in the `PATH` of `env` (or
  /// `/usr/local/bin:/usr/bin:/bin`). The program receives `argv[0]` as given without bubblewrap,
  /// and the resolved path with it.
  std::vector<std::string> argv;
  /// Existing directory where the child starts and may write (its scratch space); under `/tmp`
  /// or elsewhere.
  std::string workdir;
  /// Extra paths the child may read but not write, for paths that the sandbox's view would hide
  /// otherwise (anything under `/tmp`, or inside a hidden path). Must exist.
  std::vector<std::string> readonly_paths;
  /// Paths the child must not see (for example `reference/`). Paths that do not exist are skipped.
  std::vector<std::string> hidden_paths;
  /// Use bubblewrap when bwrap_available(); otherwise, or when false, run with the plain layers.
  bool use_bwrap = true;
  /// The child's whole environment. `PATH` defaults to `/usr/local/bin:/usr/bin:/bin` and `HOME`
  /// to the workdir.
  std::map<std::string, std::string> env;
  /// User and group the child runs as when the grader runs as root (65534 is `nobody`). Parallel
  /// workers may each use their own so that their process counts stay apart.
  uint32_t run_as_uid = 65534;
  /// See run_as_uid.
  uint32_t run_as_gid = 65534;
};

/// How a sandboxed run ended.
enum class ExitKind {
  Ok,             ///< exited with code 0
  NonZeroExit,    ///< exited with a code other than 0
  Signal,         ///< killed by a signal that no limit explains (a crash)
  Timeout,        ///< killed by the runner at the wall-clock limit
  CpuLimit,       ///< killed by the kernel at the CPU-time limit
  MemoryLimit,    ///< failed for lack of memory under the address-space limit
  OutputLimit,    ///< killed by the runner after writing 100 times the output cap
  FileSizeLimit,  ///< killed by the kernel for writing a file beyond the file-size limit
  StartFailed     ///< never started: missing program, permissions, bubblewrap set-up
};

/// Short lower-case name of a kind, for reports and logs: "ok", "non_zero_exit", "signal",
/// "timeout", "cpu_limit", "memory_limit", "output_limit", "file_size_limit", "start_failed".
const char* exit_kind_name(ExitKind kind);

/// Result of one sandboxed run.
struct SandboxResult {
  /// How the run ended.
  ExitKind kind = ExitKind::StartFailed;
  /// Exit code when the program exited, else -1.
  int exit_code = -1;
  /// Terminating signal when the program was killed by one, else 0.
  int signal = 0;
  /// Wall-clock time from the start to the end of the last process of the run, in seconds.
  double wall_seconds = 0;
  /// User plus system CPU time of all processes of the run, in seconds.
  double cpu_seconds = 0;
  /// Largest resident set of any one of its processes, in bytes.
  int64_t max_rss_bytes = 0;
  /// Combined stdout and stderr, capped (see SandboxLimits::output_bytes). When truncated, the
  /// kept head is followed by a line saying how many bytes were dropped, then the last 4 KiB.
  std::string output;
  /// True when some output was dropped.
  bool output_truncated = false;
  /// True when the program ran inside bubblewrap.
  bool sandboxed_with_bwrap = false;
  /// For StartFailed: what could not be done and why.
  std::string start_error;
  /// The limits the run had (reason() quotes them).
  SandboxLimits limits;

  /// One sentence for the student, e.g. "crashed with SIGSEGV (segmentation fault: an invalid
  /// memory access)", "was killed after the 10 s time limit", "ran out of memory (limit 4 GiB)".
  std::string reason() const;
};

/// Runs `options.argv` in `options.workdir` under `limits` and waits for it to end. Never throws
/// for anything the child does; a child that cannot start yields ExitKind::StartFailed. Throws
/// effml::Error for caller mistakes: empty argv, a workdir that is not an existing directory or
/// that lies inside a hidden path, a read-only path that does not exist, non-positive wall time
/// or output cap.
SandboxResult run_sandboxed(const SandboxOptions& options, const SandboxLimits& limits);

/// True when `bwrap` is on the `PATH` (or in /usr/bin) and runs /bin/true here with the flags
/// run_sandboxed uses, as the user the child would run as. Checked once per process, then cached.
bool bwrap_available();

}  // namespace effml::grader
