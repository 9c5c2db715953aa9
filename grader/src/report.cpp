// results.json, JUnit XML, the terminal table and the summary line (see report.h).
#include "effml/grader/report.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "effml/grader/files.h"

namespace effml::grader {

namespace {

// "80", "7.5": points without useless decimals.
std::string points(double v) {
  char buf[32];
  if (std::fabs(v - std::round(v)) < 1e-9) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f", v);
  }
  return buf;
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

std::string xml_escape(const std::string& raw) {
  const std::string text = clean_text(raw);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string first_line(const std::string& text) {
  const auto nl = text.find('\n');
  return nl == std::string::npos ? text : text.substr(0, nl);
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid.
std::size_t utf8_length(const std::string& s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;  // a continuation byte or 0xF8..0xFF cannot start a sequence
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  // Overlong forms, surrogates, and code points past U+10FFFF are invalid.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
    return 0;
  }
  return n;
}

const char* kReset = "\033[0m";

const char* status_color(TaskStatus s) {
  switch (s) {
    case TaskStatus::Passed:
      return "\033[32m";
    case TaskStatus::Failed:
      return "\033[31m";
    case TaskStatus::Pending:
      return "\033[33m";
  }
  return "";
}

std::string pad(const std::string& s, std::size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

}  // namespace

std::string clean_text(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_length(text, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (n == 1 && (c < 0x20 || c == 0x7F) && c != '\n' && c != '\t') {
      ++i;  // control characters (escape sequences, NUL, carriage returns) are dropped
      continue;
    }
    out.append(text, i, n);
    i += n;
  }
  return out;
}

nlohmann::json to_results_json(const GradeResult& result) {
  nlohmann::json j;
  j["score"] = result.score();
  // Whole seconds, as in the specification's example; the exact figure is in extra_data.
  j["execution_time"] = static_cast<int64_t>(std::ceil(result.seconds));
  std::string output =
      result.title + ": " + result.impl + " implementation, " + result.mode + " mode";
  if (result.seed) output += " (seed " + std::to_string(*result.seed) + ")";
  output += ".\n" + summary_line(result);
  if (!result.build_ok) output += "\n\nThe build failed:\n" + result.build_message;
  j["output"] = clean_text(output);
  j["output_format"] = "text";
  j["test_output_format"] = "text";
  j["stdout_visibility"] = "hidden";

  nlohmann::json extra;
  extra["lab"] = result.lab;
  extra["short_name"] = result.short_name;
  extra["mode"] = result.mode;
  extra["impl"] = result.impl;
  extra["impl_dir"] = result.impl_dir;
  extra["seed"] = result.seed ? nlohmann::json(std::to_string(*result.seed)) : nlohmann::json();
  extra["max_score"] = result.max_score();
  extra["autograded_max_score"] = result.autograded_max_score();
  extra["passed"] = result.count(TaskStatus::Passed);
  extra["failed"] = result.count(TaskStatus::Failed);
  extra["pending"] = result.count(TaskStatus::Pending);
  extra["build"] = {{"ok", result.build_ok},
                    {"cached", result.build_cached},
                    {"seconds", result.build_seconds},
                    {"message", clean_text(result.build_message)}};
  extra["bwrap"] = result.bwrap;
  extra["seconds"] = std::round(result.seconds * 1000) / 1000;
  extra["warnings"] = result.warnings;
  j["extra_data"] = extra;

  nlohmann::json tests = nlohmann::json::array();
  for (std::size_t i = 0; i < result.tasks.size(); ++i) {
    const TaskResult& t = result.tasks[i];
    nlohmann::json test;
    test["name"] = t.title;
    test["number"] = std::to_string(i + 1);
    test["score"] = t.score;
    test["max_score"] = t.max_score;
    test["status"] = t.status == TaskStatus::Failed ? "failed" : "passed";
    test["output"] = clean_text(t.output);
    test["output_format"] = "text";
    test["visibility"] = t.visibility;
    test["tags"] = t.tags;
    nlohmann::json te = t.extra;
    te["task"] = t.name;
    te["status"] = task_status_name(t.status);
    te["hidden"] = t.hidden;
    te["seconds"] = std::round(t.seconds * 1000) / 1000;
    test["extra_data"] = te;
    tests.push_back(test);
  }
  j["tests"] = tests;
  return j;
}

std::string results_json_text(const GradeResult& result) {
  return to_results_json(result).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

std::string to_junit_xml(const std::vector<GradeResult>& results) {
  int tests = 0, failures = 0, skipped = 0;
  double time = 0;
  for (const auto& r : results) {
    tests += static_cast<int>(r.tasks.size());
    failures += r.count(TaskStatus::Failed);
    skipped += r.count(TaskStatus::Pending);
    time += r.seconds;
  }
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x += "<testsuites name=\"effml grade\" tests=\"" + std::to_string(tests) + "\" failures=\"" +
       std::to_string(failures) + "\" errors=\"0\" skipped=\"" + std::to_string(skipped) +
       "\" time=\"" + seconds_text(time) + "\">\n";
  for (const auto& r : results) {
    x += "  <testsuite name=\"" + xml_escape(r.lab) + "\" tests=\"" +
         std::to_string(r.tasks.size()) + "\" failures=\"" +
         std::to_string(r.count(TaskStatus::Failed)) + "\" errors=\"0\" skipped=\"" +
         std::to_string(r.count(TaskStatus::Pending)) + "\" time=\"" + seconds_text(r.seconds) +
         "\">\n";
    x += "    <properties>\n";
    auto property = [&](const std::string& name, const std::string& value) {
      x += "      <property name=\"" + xml_escape(name) + "\" value=\"" + xml_escape(value) +
           "\"/>\n";
    };
    property("mode", r.mode);
    property("impl", r.impl);
    property("score", points(r.score()) + "/" + points(r.max_score()));
    if (r.seed) property("seed", std::to_string(*r.seed));
    property("build", r.build_ok ? (r.build_cached ? "ok (cached)" : "ok") : "failed");
    x += "    </properties>\n";
    for (const auto& t : r.tasks) {
      x += "    <testcase classname=\"" + xml_escape(r.lab) + "\" name=\"" + xml_escape(t.name) +
           "\" time=\"" + seconds_text(t.seconds) + "\">\n";
      if (t.status == TaskStatus::Failed) {
        x += "      <failure type=\"failed\" message=\"" + xml_escape(first_line(t.output)) +
             "\">" + xml_escape(t.output) + "</failure>\n";
      } else if (t.status == TaskStatus::Pending) {
        x += "      <skipped message=\"pending manual grading\"/>\n";
        x += "      <system-out>" + xml_escape(t.output) + "</system-out>\n";
      } else {
        x += "      <system-out>" + xml_escape(t.output) + "</system-out>\n";
      }
      x += "    </testcase>\n";
    }
    x += "  </testsuite>\n";
  }
  x += "</testsuites>\n";
  return x;
}

std::string summary_line(const GradeResult& result) {
  std::string s = result.short_name + ": " + points(result.score()) + "/" +
                  points(result.max_score()) + " points, " +
                  std::to_string(result.count(TaskStatus::Passed)) + " passed, " +
                  std::to_string(result.count(TaskStatus::Failed)) + " failed";
  const int pending = result.count(TaskStatus::Pending);
  if (pending > 0) s += ", " + std::to_string(pending) + " pending manual grading";
  return s;
}

std::string format_table(const GradeResult& result, bool color) {
  std::size_t width = 4;
  for (const auto& t : result.tasks) width = std::max(width, t.name.size());
  std::string out = result.title + " (" + result.impl + ", " + result.mode + " mode";
  if (result.seed) out += ", seed " + std::to_string(*result.seed);
  out += ")\n";
  if (!result.build_ok) {
    out += "\nThe build failed:\n" + first_lines(clean_text(result.build_message), 40) + "\n";
  }
  out += "\n  " + pad("task", width) + "  " + pad("points", 9) + pad("status", 9) + "result\n";
  for (const auto& t : result.tasks) {
    const std::string status = task_status_name(t.status);
    std::string line = first_line(clean_text(t.output));
    if (line.size() > 90) line = line.substr(0, 87) + "...";
    if (!result.build_ok && t.kind != TaskKind::Manual) line = "not run: the build failed";
    out += "  " + pad(t.name, width) + "  " + pad(points(t.score) + "/" + points(t.max_score), 9) +
           (color ? status_color(t.status) : "") + pad(status, 9) + (color ? kReset : "") + line +
           (t.hidden ? "  [hidden]" : "") + "\n";
  }
  bool header = false;
  for (const auto& t : result.tasks) {
    if (t.status != TaskStatus::Failed || !result.build_ok) continue;
    const std::string text = clean_text(t.output);
    if (text.find('\n') == std::string::npos && text.size() <= 90) continue;
    if (!header) out += "\nDetails:\n";
    header = true;
    out += "  " + t.name + ":\n";
    for (const auto& l : split_lines(first_lines(text, 12))) out += "    " + l + "\n";
  }
  for (const auto& w : result.warnings) out += "\nwarning: " + w + "\n";
  const std::string summary = summary_line(result);
  out += "\n";
  if (color) {
    const bool all = result.count(TaskStatus::Failed) == 0;
    out += std::string(all ? "\033[1;32m" : "\033[1m") + summary + kReset + "\n";
  } else {
    out += summary + "\n";
  }
  return out;
}

bool color_wanted(int fd) {
  const char* no_color = std::getenv("NO_COLOR");
  if (no_color != nullptr && no_color[0] != '\0') return false;
  return ::isatty(fd) == 1;
}

void write_reports(const GradeResult& result, const std::string& out_dir) {
  make_dirs(out_dir);
  write_file(out_dir + "/results.json", results_json_text(result));
  write_file(out_dir + "/junit.xml", to_junit_xml({result}));
}

}  // namespace effml::grader
