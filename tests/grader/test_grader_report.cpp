// Tests of the grader's outputs: results.json read back field by field against the Gradescope
// specification, JUnit XML checked for well-formedness and content, the table and summary line.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "effml/grader/files.h"
#include "effml/grader/report.h"

namespace {

using Catch::Matchers::Contains;
using effml::grader::GradeResult;
using effml::grader::TaskKind;
using effml::grader::TaskResult;
using effml::grader::TaskStatus;

TaskResult task(const std::string& name, TaskKind kind, double points, TaskStatus status,
                const std::string& output) {
  TaskResult t;
  t.name = name;
  t.title = "Title of " + name;
  t.kind = kind;
  t.max_score = points;
  t.score = status == TaskStatus::Passed ? points : 0;
  t.status = status;
  t.output = output;
  t.visibility = "visible";
  t.tags = {"tag_" + name};
  t.seconds = 0.25;
  return t;
}

// 80/100: three passed, two failed (one with hostile bytes in its output), one pending.
GradeResult sample() {
  GradeResult r;
  r.lab = "lab0_tensor";
  r.short_name = "lab0";
  r.title = "Lab 0: the tensor core";
  r.mode = "instructor";
  r.impl = "submission";
  r.impl_dir = "/tmp/sub";
  r.seed = 12345;
  r.build_ok = true;
  r.seconds = 12.5;
  r.tasks.push_back(task("linear_forward", TaskKind::Exact, 30, TaskStatus::Passed, "All match."));
  r.tasks.push_back(task("relu_backward", TaskKind::Exact, 10, TaskStatus::Failed,
                         "output 'dx' differs <here> & \"there\"\nsecond line"));
  r.tasks.back().extra["max_abs_diff"] = 0.5;
  r.tasks.push_back(task("sgd", TaskKind::Exact, 10, TaskStatus::Failed,
                         std::string("bad bytes: \xff\xfe and \x1b[31mescape\x01 end")));
  r.tasks.push_back(
      task("train_lenet300", TaskKind::Accuracy, 30, TaskStatus::Passed, "Test accuracy 88.00%"));
  r.tasks.back().extra["accuracy"] = 0.88;
  r.tasks.push_back(task("hidden_large", TaskKind::Exact, 20, TaskStatus::Passed, "ok"));
  r.tasks.back().hidden = true;
  r.tasks.back().visibility = "after_due_date";
  r.tasks.push_back(task("questions", TaskKind::Manual, 10, TaskStatus::Pending,
                         "Manually graded (10 points): your answers were collected"));
  r.tasks.back().tags.push_back("manual");
  return r;
}

// A small well-formedness check: balanced tags, quoted attributes, only known entities, no
// control characters. Returns "" when well-formed, else what is wrong.
std::string xml_problem(const std::string& x) {
  std::vector<std::string> stack;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(x[i]);
    if (c < 0x20 && c != '\n' && c != '\t') return "control character at " + std::to_string(i);
    if (c == '&') {
      bool known = false;
      for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"}) {
        known = known || x.compare(i, std::string(e).size(), e) == 0;
      }
      if (!known) return "bare & at " + std::to_string(i);
    }
    if (c == '>') return "bare > in text at " + std::to_string(i);
    if (c != '<') continue;
    const std::size_t end = x.find('>', i);
    if (end == std::string::npos) return "unclosed tag";
    std::string tag = x.substr(i + 1, end - i - 1);
    i = end;
    if (tag[0] == '?') continue;
    int quotes = 0;
    for (char q : tag) quotes += q == '"';
    if (quotes % 2 != 0) return "unbalanced quotes in <" + tag + ">";
    if (tag.find('<') != std::string::npos) return "< inside a tag";
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1)) return "mismatched <" + tag + ">";
      stack.pop_back();
    } else if (tag.back() != '/') {
      stack.push_back(tag.substr(0, tag.find(' ')));
    }
  }
  return stack.empty() ? "" : "unclosed <" + stack.back() + ">";
}

}  // namespace

TEST_CASE("results.json has the Gradescope fields and our extra data", "[grader][report]") {
  const GradeResult r = sample();
  const auto j = nlohmann::json::parse(effml::grader::results_json_text(r));
  CHECK(j["score"].get<double>() == 80);
  CHECK(j["execution_time"] == 13);  // whole seconds, rounded up
  CHECK(j["extra_data"]["seconds"].get<double>() == 12.5);
  CHECK(j["output_format"] == "text");
  CHECK_THAT(j["output"].get<std::string>(),
             Contains("lab0: 80/110 points, 3 passed, 2 failed, 1 pending manual grading"));
  CHECK_THAT(j["output"].get<std::string>(), Contains("seed 12345"));
  CHECK(j["extra_data"]["seed"] == "12345");
  CHECK(j["extra_data"]["mode"] == "instructor");
  CHECK(j["extra_data"]["autograded_max_score"].get<double>() == 100);
  CHECK(j["extra_data"]["failed"] == 2);
  REQUIRE(j["tests"].size() == 6);
  for (const auto& t : j["tests"]) {
    for (const char* key : {"name", "number", "score", "max_score", "status", "output",
                            "visibility", "tags", "extra_data"}) {
      INFO(key);
      CHECK(t.contains(key));
    }
    const std::string status = t["status"];
    CHECK((status == "passed" || status == "failed"));
  }
  const auto& failed = j["tests"][1];
  CHECK(failed["name"] == "Title of relu_backward");
  CHECK(failed["status"] == "failed");
  CHECK(failed["score"].get<double>() == 0);
  CHECK(failed["max_score"].get<double>() == 10);
  CHECK(failed["extra_data"]["task"] == "relu_backward");
  CHECK(failed["extra_data"]["max_abs_diff"].get<double>() == 0.5);
  // Invalid UTF-8 is replaced, control characters are dropped.
  const std::string cleaned = j["tests"][2]["output"];
  CHECK_THAT(cleaned, Contains("bad bytes: \xEF\xBF\xBD\xEF\xBF\xBD and [31mescape end"));
  CHECK(j["tests"][3]["extra_data"]["accuracy"].get<double>() == 0.88);
  CHECK(j["tests"][4]["visibility"] == "after_due_date");
  CHECK(j["tests"][4]["extra_data"]["hidden"] == true);
  // Manual: Gradescope has no pending state; a passed test worth 0 so far, tagged manual.
  const auto& manual = j["tests"][5];
  CHECK(manual["status"] == "passed");
  CHECK(manual["score"].get<double>() == 0);
  CHECK(manual["max_score"].get<double>() == 10);
  CHECK(manual["extra_data"]["status"] == "pending");
  CHECK(manual["tags"].back() == "manual");
}

TEST_CASE("junit.xml is well-formed with one testcase per task", "[grader][report]") {
  GradeResult second = sample();
  second.lab = "lab1_pruning";
  const std::string x = effml::grader::to_junit_xml({sample(), second});
  INFO(x);
  CHECK(xml_problem(x).empty());
  CHECK(xml_problem("<a><b></a>") == "mismatched </a>");  // the checker itself can fail
  CHECK_THAT(x,
             Contains("<testsuites name=\"effml grade\" tests=\"12\" failures=\"4\" errors=\"0\" "
                      "skipped=\"2\""));
  CHECK_THAT(x, Contains("<testsuite name=\"lab0_tensor\" tests=\"6\" failures=\"2\""));
  CHECK_THAT(x, Contains("<testsuite name=\"lab1_pruning\""));
  CHECK_THAT(
      x, Contains("<testcase classname=\"lab0_tensor\" name=\"relu_backward\" time=\"0.250\">"));
  CHECK_THAT(
      x, Contains("<failure type=\"failed\" message=\"output &apos;dx&apos; differs &lt;here&gt; "
                  "&amp; &quot;there&quot;\">"));
  CHECK_THAT(x, Contains("second line</failure>"));
  CHECK_THAT(x, Contains("<skipped message=\"pending manual grading\"/>"));
  CHECK_THAT(x, Contains("<property name=\"seed\" value=\"12345\"/>"));
}

TEST_CASE("the summary line and the table, with and without colour", "[grader][report]") {
  const GradeResult r = sample();
  CHECK(effml::grader::summary_line(r) ==
        "lab0: 80/110 points, 3 passed, 2 failed, 1 pending manual grading");
  GradeResult plain = r;
  plain.tasks.pop_back();
  CHECK(effml::grader::summary_line(plain) == "lab0: 80/100 points, 3 passed, 2 failed");

  const std::string table = effml::grader::format_table(r, false);
  CHECK(table.find('\033') == std::string::npos);
  CHECK_THAT(table, Contains("  relu_backward   0/10     failed   output"));
  CHECK_THAT(table, Contains("0/10     failed"));
  CHECK_THAT(table, Contains("[hidden]"));
  CHECK_THAT(table, Contains("Details:\n  relu_backward:\n    output 'dx' differs"));
  CHECK_THAT(table, Contains("lab0: 80/110 points"));
  const std::string coloured = effml::grader::format_table(r, true);
  CHECK_THAT(coloured, Contains("\033[31mfailed"));
  CHECK_THAT(coloured, Contains("\033[32mpassed"));
  CHECK_THAT(coloured, Contains("\033[33mpending"));

  GradeResult broken = r;
  broken.build_ok = false;
  broken.build_message = "Compilation failed:\nlab0.cpp:3:1: error: oops";
  CHECK_THAT(effml::grader::format_table(broken, false),
             Contains("The build failed:\nCompilation failed:\nlab0.cpp:3:1: error: oops"));
}

TEST_CASE("colour is off for pipes and when NO_COLOR is set", "[grader][report]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  CHECK_FALSE(effml::grader::color_wanted(fds[1]));
  ::close(fds[0]);
  ::close(fds[1]);
  ::setenv("NO_COLOR", "1", 1);
  CHECK_FALSE(effml::grader::color_wanted(STDOUT_FILENO));
  ::unsetenv("NO_COLOR");
}

TEST_CASE("write_reports writes both files", "[grader][report]") {
  const std::string dir = effml::grader::make_temp_dir("/tmp", "effml-report-test-");
  effml::grader::write_reports(sample(), dir + "/out");
  const auto j = nlohmann::json::parse(effml::grader::read_file(dir + "/out/results.json"));
  CHECK(j["tests"].size() == 6);
  CHECK(xml_problem(effml::grader::read_file(dir + "/out/junit.xml")).empty());
  effml::grader::remove_tree(dir);
}
