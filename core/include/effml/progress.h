/// \file progress.h
/// \brief A one-line progress bar for long work (training epochs, batch grading).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace effml {

/// Draws "label [=====>     ] 37/100  loss 0.412  acc 85.1%  3.2s" on stderr.
///
/// On a terminal the line is redrawn in place at most ten times a second; when stderr is not a
/// terminal (CI logs) only the final line of each run is printed, so logs stay short.
class ProgressBar {
 public:
  /// A bar for `total` units of work after `label`; draws nothing unless `enabled`. Timed from now.
  ProgressBar(std::string label, int64_t total, bool enabled = true);
  /// Sets the position (done of total) and the text shown after the counts.
  void update(int64_t done, const std::string& info = "");
  /// Prints the final state and a newline.
  void finish(const std::string& info = "");

 private:
  void draw(bool final);
  std::string label_, info_;
  int64_t total_, done_ = 0;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace effml
