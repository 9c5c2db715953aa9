/// \file error.h
/// \brief Exceptions and the always-on check macro used at every public boundary.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace effml {

/// Any error the core raises: bad shapes, bad values, bad files. The message names them.
class Error : public std::runtime_error {
 public:
  /// `what` is the full message, returned by what().
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// Thrown by a lab stub that the student has not written yet; the message names the task.
class NotImplemented : public Error {
 public:
  /// The message is "not implemented yet: " followed by `task`.
  explicit NotImplemented(const std::string& task)
      : Error("not implemented yet: " + task) {}
};

namespace detail {
[[noreturn]] void throw_check_failure(const char* file, int line, const char* cond,
                                      const std::string& message);
}  // namespace detail

}  // namespace effml

/// Always-on check (kept in release builds): throws effml::Error with the message, the failed
/// condition, and the file and line. The message is a stream expression, e.g.
/// `EFFML_CHECK(a.dim() == 2, "matmul: expected a 2-D tensor, got " << a.shape_str())`.
#define EFFML_CHECK(cond, message)                                                        \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::ostringstream effml_check_os_;                                                 \
      effml_check_os_ << message;                                                         \
      ::effml::detail::throw_check_failure(__FILE__, __LINE__, #cond, effml_check_os_.str()); \
    }                                                                                     \
  } while (0)
