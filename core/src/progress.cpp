#include "effml/progress.h"

#include <unistd.h>

#include <cstdio>

namespace effml {

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      tty_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void ProgressBar::update(int64_t done, const std::string& info) {
  done_ = done;
  info_ = info;
  const auto now = std::chrono::steady_clock::now();
  if (enabled_ && tty_ && now - last_draw_ >= std::chrono::milliseconds(100)) {
    last_draw_ = now;
    draw(false);
  }
}

void ProgressBar::finish(const std::string& info) {
  if (finished_) return;
  finished_ = true;
  done_ = total_;
  if (!info.empty()) info_ = info;
  if (enabled_) draw(true);
}

void ProgressBar::draw(bool final) {
  const int width = 24;
  const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  const int filled = static_cast<int>(frac * width);
  std::string bar(static_cast<std::size_t>(width), ' ');
  for (int i = 0; i < filled; ++i) bar[static_cast<std::size_t>(i)] = '=';
  if (filled < width) bar[static_cast<std::size_t>(filled)] = '>';
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "%s%s [%s] %lld/%lld  %s  %.1fs%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               bar.c_str(), static_cast<long long>(done_), static_cast<long long>(total_),
               info_.c_str(), secs, final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace effml
