// Grading the real Lab 1 in the repository: the reference scores every point of the automatic
// tasks, the model tasks included (their fine-tuning runs for a minute or two: tag [slow]); the
// stub scores 0 without a grader error; and two submissions that are the reference with one
// line changed (channel_prune keeps the last channels instead of the first; channel sorting
// puts the least important channel first) fail exactly the tasks that check that line.
#include <catch2/catch.hpp>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "effml/grader/config.h"
#include "effml/grader/files.h"
#include "effml/grader/grade.h"
#include "effml/grader/report.h"
#include "lab_grading.h"

namespace {

namespace g = effml::grader;
using effml::testing::figure;
using effml::testing::task_named;
using Catch::Matchers::Contains;

}  // namespace

TEST_CASE("lab1: the reference scores every point of the automatic tasks including the model tasks",
          "[grader][lab1][slow]") {
  effml::testing::LabGrading lab("lab1");
  const auto options = lab.options(g::ImplKind::Reference, "reference");
  double points = 0;
  int model_tasks = 0;
  for (const auto& t : lab.manifest.tasks) {
    if (t.kind != g::TaskKind::Manual) points += t.points;
    if (t.kind == g::TaskKind::Model) ++model_tasks;
  }
  REQUIRE(model_tasks == 3);
  const g::GradeResult r = g::grade(lab.config, options);
  INFO(g::format_table(r, false));
  CHECK(r.mode == "instructor");
  CHECK(r.build_ok);
  CHECK(r.tasks.size() == lab.manifest.tasks.size());
  for (const auto& t : r.tasks) {
    if (t.kind == g::TaskKind::Manual) continue;
    INFO(t.name << ": " << t.output);
    CHECK(t.status == g::TaskStatus::Passed);
    CHECK(t.score == t.max_score);
  }
  // The manual task adds nothing until graded by hand (pending, or failed while the
  // reference has no ANSWERS.md of its own).
  CHECK(r.score() == points);

  // The figures the model tasks measured (see the manifest and labs/lab1_pruning/README.md).
  const auto& finetune = task_named(r, "prune_finetune");
  CHECK(figure(finetune, "size_fraction") <= 0.25);
  CHECK(figure(finetune, "baseline_size_bytes") == 264680.0);
  CHECK(figure(finetune, "baseline_accuracy") - figure(finetune, "accuracy") <= 0.01);
  // The lab's own target for the reference is tighter than the grader's limit of 1 point (which
  // leaves room for other choices of sparsities): within 0.5 points. Measured with seeds 0-4 on
  // 2 threads: losses of 0.30 to 0.47 points; this run (seed 0, one thread) lost 0.37.
  CHECK(figure(finetune, "baseline_accuracy") - figure(finetune, "accuracy") <= 0.005);
  const auto& sorting = task_named(r, "channel_sorting_model");
  CHECK(figure(sorting, "accuracy") == figure(sorting, "baseline_accuracy"));
  const auto& pruning = task_named(r, "channel_prune_model");
  // Widths {11, M, 22, M, 45, 64, M}: 77,616 + 426,888 + 436,590 + 1,270,080 + 5,760 MACs.
  CHECK(figure(pruning, "macs") == 2216934);
  CHECK(figure(pruning, "macs_formula") == 2216934);
  CHECK(figure(pruning, "baseline_macs") == 3731328);
  CHECK(figure(pruning, "speedup") >= 1.1);

  const std::string answers = std::string(EFFML_SOURCE_DIR) + "/reference/lab1_pruning/ANSWERS.md";
  const std::string handout = std::string(EFFML_SOURCE_DIR) + "/labs/lab1_pruning/ANSWERS.md";
  if (g::is_plain_file(answers) && g::read_file(answers) != g::read_file(handout)) {
    const auto& questions = task_named(r, "questions");
    CHECK(questions.status == g::TaskStatus::Pending);
    CHECK(questions.score == 0);
  }
}

TEST_CASE("lab1: the stub scores 0 without a grader error", "[grader][lab1]") {
  effml::testing::LabGrading lab("lab1");
  auto options = lab.options(g::ImplKind::Stub, "stub");
  // Every task but sensitivity_scan, whose expected outputs cost the reference a scan of the
  // dense VGG (about 10 s) before the stub fails the same way as the other exact tasks. The
  // model tasks are kept: their runners load data before the first call of a student function.
  for (const auto& t : lab.manifest.tasks) {
    if (t.name != "sensitivity_scan") options.only_tasks.push_back(t.name);
  }
  REQUIRE(options.only_tasks.size() + 1 == lab.manifest.tasks.size());
  const g::GradeResult r = g::grade(lab.config, options);
  g::write_reports(r, options.out_dir);
  INFO(g::format_table(r, false));
  CHECK(r.build_ok);
  CHECK(r.score() == 0);
  CHECK(r.tasks.size() == options.only_tasks.size());
  for (const auto& t : r.tasks) {
    if (t.kind == g::TaskKind::Manual) continue;
    INFO(t.name);
    CHECK(t.status == g::TaskStatus::Failed);
    CHECK_THAT(t.output, Contains("not implemented yet"));
  }
  const auto j = nlohmann::json::parse(g::read_file(options.out_dir + "/results.json"));
  CHECK(j["score"].get<double>() == 0);
  CHECK(j["tests"].size() == r.tasks.size());
}

TEST_CASE("lab1: channel_prune keeping the last channels fails only the channel_prune task",
          "[grader][lab1]") {
  effml::testing::LabGrading lab("lab1");
  // The kept output channels become the last keep[j] of each conv (the batch norm follows);
  // the next conv still reads its first input channels, so the slices no longer match.
  const std::string dir = lab.mutated_submission(
      "last_channels", "    const std::vector<int64_t> out = first_n(keep[j]);\n",
      "    std::vector<int64_t> out = first_n(keep[j]); for (int64_t& o : out) o += "
      "blocks[j].conv->out_channels() - keep[j];\n");
  auto options = lab.options(g::ImplKind::Submission, "last_channels_grade");
  options.submission_dir = dir;
  // Seed 3: random VGGs whose pruned convs lose channels at the drawn ratios (with widths of
  // 1 or a small ratio, keeping the first and keeping the last channels coincide).
  options.seed = 3;
  options.only_tasks = {"channel_prune", "channel_sorting", "num_channels_to_keep"};
  const g::GradeResult r = g::grade(lab.config, options);
  INFO(g::format_table(r, false));
  CHECK(r.build_ok);
  REQUIRE(r.tasks.size() == 3);
  CHECK(task_named(r, "channel_prune").status == g::TaskStatus::Failed);
  CHECK_THAT(task_named(r, "channel_prune").output, Contains("features."));
  CHECK(task_named(r, "channel_sorting").status == g::TaskStatus::Passed);
  CHECK(task_named(r, "num_channels_to_keep").status == g::TaskStatus::Passed);
}

TEST_CASE("lab1: channel sorting in increasing order fails only the sorting tasks",
          "[grader][lab1]") {
  effml::testing::LabGrading lab("lab1");
  const std::string dir = lab.mutated_submission("ascending", "argsort(/*descending=*/true)",
                                                 "argsort(/*descending=*/false)");
  auto options = lab.options(g::ImplKind::Submission, "ascending_grade");
  options.submission_dir = dir;
  options.seed = 3;
  options.only_tasks = {"channel_sorting", "channel_sorting_model", "channel_prune",
                        "input_channel_importance"};
  const g::GradeResult r = g::grade(lab.config, options);
  INFO(g::format_table(r, false));
  CHECK(r.build_ok);
  REQUIRE(r.tasks.size() == 4);
  CHECK(task_named(r, "channel_sorting").status == g::TaskStatus::Failed);
  const auto& model = task_named(r, "channel_sorting_model");
  CHECK(model.status == g::TaskStatus::Failed);
  // The grader names the conv whose channels are out of order; the accuracy is unchanged,
  // since any permutation computes the same function.
  CHECK_THAT(model.output, Contains("output channels of features.") && Contains("not sorted"));
  CHECK(figure(model, "accuracy") == figure(model, "baseline_accuracy"));
  CHECK(task_named(r, "channel_prune").status == g::TaskStatus::Passed);
  CHECK(task_named(r, "input_channel_importance").status == g::TaskStatus::Passed);
}
