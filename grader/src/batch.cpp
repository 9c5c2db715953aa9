// Grading a class with parallel `effml grade` children (see batch.h).
#include "effml/grader/batch.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "effml/error.h"
#include "effml/grader/files.h"

extern char** environ;

namespace effml::grader {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string points(double v) {
  char buf[32];
  if (v == std::floor(v)) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f", v);
  }
  return buf;
}

// One line: a gradebook cell and a progress line must not span lines.
std::string one_line(const std::string& text) {
  std::string s;
  for (char c : trim_right(text)) s += (c == '\n' || c == '\r') ? ' ' : c;
  return s.size() > 500 ? s.substr(0, 500) + "..." : s;
}

// The last lines of a child's log, which hold "effml grade: error: ..." when the grader failed.
std::string log_tail(const std::string& log) {
  if (!is_plain_file(log)) return "";
  const std::vector<std::string> lines = split_lines(read_file(log));
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (it->find("error:") != std::string::npos) return *it;
  }
  std::string tail;
  const std::size_t from = lines.size() > 3 ? lines.size() - 3 : 0;
  for (std::size_t i = from; i < lines.size(); ++i) tail += lines[i] + " ";
  return tail;
}

struct ChildOutcome {
  bool exited = false;
  int code = -1;
  int signal = 0;
  bool timed_out = false;
  std::string start_error;
};

// Runs argv with stdout and stderr in `log`, in a new process group, with `env`; kills the
// group at the deadline. Never throws.
ChildOutcome run_child(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       const std::string& log, double timeout_seconds) {
  ChildOutcome outcome;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    outcome.start_error = std::string("cannot start ") + argv[0] + ": " + std::strerror(rc);
    return outcome;
  }
  const auto start = Clock::now();
  int status = 0;
  while (true) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) {
      outcome.start_error = std::string("waitpid failed: ") + std::strerror(errno);
      return outcome;
    }
    if (since(start) > timeout_seconds) {
      outcome.timed_out = true;
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (WIFEXITED(status)) {
    outcome.exited = true;
    outcome.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    outcome.signal = WTERMSIG(status);
  }
  // A grandchild left in the group (it should not be) must not outlive the batch.
  ::kill(-pid, SIGKILL);
  return outcome;
}

// Fills `row` from OUT/<student>/results.json.
void read_results(const std::string& path, const std::vector<std::string>& tasks, BatchRow& row) {
  const nlohmann::json j = nlohmann::json::parse(read_file(path));
  row.score = j.at("score").get<double>();
  row.max_score = 0;
  row.task_scores.assign(tasks.size(), std::nullopt);
  for (const auto& t : j.at("tests")) {
    row.max_score += t.value("max_score", 0.0);
    std::string name;
    if (t.contains("extra_data") && t["extra_data"].contains("task")) {
      name = t["extra_data"]["task"].get<std::string>();
    }
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      if (tasks[i] == name) row.task_scores[i] = t.value("score", 0.0);
    }
  }
  if (j.contains("extra_data") && j["extra_data"].contains("max_score")) {
    row.max_score = j["extra_data"]["max_score"].get<double>();
  }
}

std::vector<std::string> child_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var = *e;
    if (var.rfind("OMP_NUM_THREADS=", 0) == 0 || var.rfind("NO_COLOR=", 0) == 0) continue;
    env.push_back(var);
  }
  env.push_back("OMP_NUM_THREADS=1");
  env.push_back("NO_COLOR=1");
  return env;
}

}  // namespace

int BatchResult::errors() const {
  int n = 0;
  for (const auto& r : rows) n += r.status == "error" ? 1 : 0;
  return n;
}

std::string csv_field(const std::string& field) {
  const bool quote = field.find_first_of(",\"\n\r") != std::string::npos ||
                     (!field.empty() && (field.front() == ' ' || field.back() == ' '));
  if (!quote) return field;
  std::string q = "\"";
  for (char c : field) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string gradebook_csv(const BatchResult& result) {
  std::string csv = "student,score,max_score";
  for (const auto& t : result.tasks) csv += "," + csv_field(t);
  csv += ",status,error\n";
  for (const auto& r : result.rows) {
    csv += csv_field(r.student);
    if (r.status == "graded") {
      csv += "," + points(r.score) + "," + points(r.max_score);
    } else {
      csv += ",,";
    }
    for (std::size_t i = 0; i < result.tasks.size(); ++i) {
      csv += ",";
      if (i < r.task_scores.size() && r.task_scores[i]) csv += points(*r.task_scores[i]);
    }
    csv += "," + r.status + "," + csv_field(r.error) + "\n";
  }
  return csv;
}

std::vector<std::string> list_submissions(const std::string& submissions_dir) {
  EFFML_CHECK(is_dir(submissions_dir), "batch: the submissions folder "
                                           << submissions_dir << " does not exist (it should hold "
                                           << "one folder per student)");
  std::vector<std::string> students;
  for (const auto& entry : fs::directory_iterator(submissions_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (entry.is_directory()) students.push_back(name);
  }
  std::sort(students.begin(), students.end());
  return students;
}

BatchResult run_batch(const BatchOptions& options, const std::vector<std::string>& tasks) {
  const auto start = Clock::now();
  EFFML_CHECK(options.jobs >= 1, "batch: --jobs must be at least 1, got " << options.jobs);
  EFFML_CHECK(!options.out_dir.empty(), "batch: no output folder given");
  EFFML_CHECK(::access(options.effml.c_str(), X_OK) == 0,
              "batch: the effml executable " << options.effml << " cannot be run");
  const std::string subs = absolute_path(options.submissions_dir);
  const std::string out = absolute_path(options.out_dir);
  EFFML_CHECK(!(out == subs || out.rfind(subs + "/", 0) == 0),
              "batch: the output folder " << out << " must not be inside the submissions folder "
                                          << subs << " (it would be graded as a student)");
  const std::vector<std::string> students = list_submissions(subs);
  make_dirs(out);

  BatchResult result;
  result.tasks = tasks;
  result.gradebook = out + "/gradebook.csv";
  result.rows.resize(students.size());
  for (std::size_t i = 0; i < students.size(); ++i) {
    result.rows[i].student = students[i];
    result.rows[i].status = "pending";
  }
  const std::vector<std::string> env = child_environment();

  std::mutex mutex;  // guards `done`, the gradebook file and progress
  std::size_t done = 0;
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    while (true) {
      const std::size_t i = next.fetch_add(1);
      if (i >= students.size()) return;
      BatchRow row;  // filled here, stored under the lock (the gradebook reads every row)
      row.student = students[i];
      const auto row_start = Clock::now();
      const std::string dir = out + "/" + row.student;
      try {
        make_dirs(dir);
        // A results.json left from an earlier batch must not pass for this one.
        remove_tree(dir + "/results.json");
        remove_tree(dir + "/junit.xml");
        std::vector<std::string> argv = {options.effml, "grade",   options.lab,
                                         "--submission", subs + "/" + row.student,
                                         "--out",        dir,
                                         "--threads",    "1",
                                         "--no-color"};
        if (options.seed) {
          argv.push_back("--seed");
          argv.push_back(std::to_string(*options.seed));
        }
        for (const auto& task : options.only_tasks) {
          argv.push_back("--task");
          argv.push_back(task);
        }
        const std::string log = dir + "/grade.log";
        const ChildOutcome c = run_child(argv, env, log, options.timeout_seconds);
        if (!c.start_error.empty()) {
          row.error = c.start_error;
        } else if (c.timed_out) {
          row.error = "grading took longer than " + points(options.timeout_seconds) +
                      " s and was stopped (see " + log + ")";
        } else if (!c.exited) {
          row.error = "the grader was killed by signal " + std::to_string(c.signal) + " (" +
                      strsignal(c.signal) + "); see " + log;
        } else if (c.code != 0) {
          row.error = "the grader failed (exit " + std::to_string(c.code) + "): " + log_tail(log);
        } else if (!is_plain_file(dir + "/results.json")) {
          row.error = "the grader wrote no results.json (see " + log + ")";
        } else {
          read_results(dir + "/results.json", tasks, row);
          row.status = "graded";
        }
      } catch (const std::exception& e) {
        row.status = "error";
        row.error = e.what();
      }
      row.error = one_line(row.error);
      row.seconds = since(row_start);
      std::lock_guard<std::mutex> lock(mutex);
      result.rows[i] = row;
      ++done;
      std::string line = "[" + std::to_string(done) + "/" + std::to_string(students.size()) +
                         "] " + row.student + " ";
      line += row.status == "graded" ? points(row.score) + "/" + points(row.max_score)
                                     : "error: " + row.error;
      char secs[32];
      std::snprintf(secs, sizeof secs, " (%.1f s)", row.seconds);
      if (options.progress) options.progress(line + secs);
      try {
        write_file(result.gradebook, gradebook_csv(result));
      } catch (const std::exception&) {
        // Written again at the end, where a failure is reported.
      }
    }
  };
  std::vector<std::thread> workers;
  const int n = std::min<int>(options.jobs, std::max<int>(1, static_cast<int>(students.size())));
  for (int w = 0; w < n; ++w) workers.emplace_back(worker);
  for (auto& w : workers) w.join();
  write_file(result.gradebook, gradebook_csv(result));
  result.seconds = since(start);
  return result;
}

}  // namespace effml::grader
