// Tests of the manifest's model-task fields "format" (what the runner writes: a checkpoint, an
// integer-only VGG or a Deep Compression file) and "ptq_bits" (quantization-aware training
// compared with the grader's own post-training quantization): every accepted value parses to
// what it says, and every rejected value or combination is an error naming the file, the task
// and the field.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "effml/error.h"
#include "effml/grader/manifest.h"
#include "error_checks.h"

namespace {

namespace g = effml::grader;
using Catch::Matchers::Contains;
using effml::testing::error_of;

const char* kFile = "labs/lab2_quantization/manifest.json";
const std::string kWhere = "labs/lab2_quantization/manifest.json: tasks[0] (\"m\"): ";

std::string manifest_with(const std::string& tasks) {
  return R"({"lab": "lab2_quantization", "short_name": "lab2", "title": "Lab 2",
             "student_files": ["lab2.cpp"], "public_headers": ["lab2.h"],
             "runner": "runner.cpp", "tasks": [)" +
         tasks + "]}";
}

// A model task named "m" with `fields` (a JSON fragment, each with a leading comma) after its
// name, title, points and kind.
std::string model_task(const std::string& fields) {
  return R"({"name": "m", "title": "M", "points": 10, "kind": "model")" + fields + "}";
}

const std::string kVgg = R"(, "model": "vgg", "baseline": "vgg_dense.safetensors")";
const std::string kLenet = R"(, "model": "lenet300", "baseline": "lenet300_dense.safetensors")";

g::Task parse_one(const std::string& fields) {
  const g::Manifest m = g::parse_manifest(manifest_with(model_task(fields)), kFile);
  REQUIRE(m.tasks.size() == 1);
  return m.tasks[0];
}

std::string parse_error(const std::string& fields) {
  return error_of([&] { g::parse_manifest(manifest_with(model_task(fields)), kFile); });
}

}  // namespace

// ---- "format" ---------------------------------------------------------------------------------

TEST_CASE("model formats: a model task writes a checkpoint unless it says otherwise",
          "[grader][manifest][model_formats]") {
  CHECK(parse_one(kVgg + R"(, "max_accuracy_drop": 0.01)").format == g::ModelFormat::Checkpoint);
  CHECK(parse_one(kVgg + R"(, "format": "checkpoint", "max_accuracy_drop": 0.01)").format ==
        g::ModelFormat::Checkpoint);
}

TEST_CASE("model formats: quantized_vgg parses with the accuracy checks",
          "[grader][manifest][model_formats]") {
  const g::Task drop = parse_one(kVgg + R"(, "format": "quantized_vgg", "max_accuracy_drop": 0.003)");
  CHECK(drop.format == g::ModelFormat::QuantizedVgg);
  CHECK(drop.model == "vgg");
  REQUIRE(drop.max_accuracy_drop.has_value());
  CHECK(*drop.max_accuracy_drop == 0.003);
  CHECK_FALSE(drop.max_accuracy_change.has_value());
  const g::Task change =
      parse_one(kVgg + R"(, "format": "quantized_vgg", "max_accuracy_change": 0.01)");
  CHECK(change.format == g::ModelFormat::QuantizedVgg);
  REQUIRE(change.max_accuracy_change.has_value());
  CHECK(*change.max_accuracy_change == 0.01);
}

TEST_CASE("model formats: deep_compression parses with size, accuracy and distinct values",
          "[grader][manifest][model_formats]") {
  const g::Task t = parse_one(kLenet + R"(, "format": "deep_compression",
      "max_size_fraction": 0.0333, "max_accuracy_drop": 0.005, "max_distinct_values": 33)");
  CHECK(t.format == g::ModelFormat::DeepCompression);
  CHECK(t.model == "lenet300");
  CHECK(t.baseline == "lenet300_dense.safetensors");
  CHECK(t.max_size_fraction == 0.0333);
  CHECK(t.max_accuracy_drop == 0.005);
  CHECK(t.max_distinct_values == 33);
  // Any one of those checks is enough; the format does not tie the model.
  CHECK(parse_one(kLenet + R"(, "format": "deep_compression", "max_size_fraction": 0.1)").format ==
        g::ModelFormat::DeepCompression);
  CHECK(parse_one(kVgg + R"(, "format": "deep_compression", "max_accuracy_change": 0)").format ==
        g::ModelFormat::DeepCompression);
}

TEST_CASE("model formats: an unknown or malformed format is an error listing the formats",
          "[grader][manifest][model_formats]") {
  const std::string list =
      "\"format\" must be \"checkpoint\", \"quantized_vgg\" or \"deep_compression\", got ";
  CHECK(parse_error(kVgg + R"(, "format": "int8", "max_accuracy_drop": 0.01)") ==
        kWhere + list + "\"int8\"");
  // Names are exact: no other letter case, no surrounding space.
  CHECK_THAT(parse_error(kVgg + R"(, "format": "Quantized_VGG", "max_accuracy_drop": 0.01)"),
             Contains(kWhere + list + "\"Quantized_VGG\""));
  CHECK_THAT(parse_error(kVgg + R"(, "format": "checkpoint ", "max_accuracy_drop": 0.01)"),
             Contains(kWhere + list + "\"checkpoint \""));
  for (const std::string bad : {"\"\"", "1", "null", "true", "[\"checkpoint\"]", "{}"}) {
    INFO("format " << bad);
    CHECK(parse_error(kVgg + ", \"format\": " + bad + R"(, "max_accuracy_drop": 0.01)") ==
          kWhere + "\"format\" must be a non-empty string, got " + bad);
  }
}

TEST_CASE("model formats: quantized_vgg needs the VGG and takes only accuracy checks",
          "[grader][manifest][model_formats]") {
  CHECK(parse_error(kLenet + R"(, "format": "quantized_vgg", "max_accuracy_drop": 0.01)") ==
        kWhere + "\"format\": \"quantized_vgg\" needs the model \"vgg\"");
  // Each check that measures a float checkpoint (size with pruned weights as a bitmask,
  // channel order and widths, latency, distinct values, per-channel levels) does not apply.
  const std::vector<std::pair<std::string, std::string>> checks = {
      {"max_size_fraction", "0.5"}, {"channels_sorted", "true"}, {"channel_ratio", "0.3"},
      {"min_speedup", "1.1"},       {"max_distinct_values", "256"}, {"ptq_bits", "8"}};
  for (const auto& [key, value] : checks) {
    INFO(key);
    CHECK(parse_error(kVgg + R"(, "format": "quantized_vgg", "max_accuracy_drop": 0.01, ")" + key +
                      "\": " + value) ==
          kWhere + "\"" + key + "\" does not apply to \"format\": \"quantized_vgg\"");
  }
  CHECK_THAT(parse_error(kVgg + R"(, "format": "quantized_vgg")"),
             Contains(kWhere + "a model task needs at least one check"));
}

TEST_CASE("model formats: deep_compression rejects the checks of a VGG checkpoint and ptq_bits",
          "[grader][manifest][model_formats]") {
  const std::vector<std::pair<std::string, std::string>> checks = {
      {"channels_sorted", "true"}, {"channel_ratio", "0.3"}, {"min_speedup", "1.1"},
      {"ptq_bits", "4"}};
  for (const auto& [key, value] : checks) {
    INFO(key);
    // On the VGG, so that "channel_ratio" is refused for the format, not for the model.
    CHECK(parse_error(kVgg + R"(, "format": "deep_compression", "max_size_fraction": 0.1, ")" +
                      key + "\": " + value) ==
          kWhere + "\"" + key + "\" does not apply to \"format\": \"deep_compression\"");
  }
  // channels_sorted is refused even when false: the field has no meaning for the format.
  CHECK(parse_error(kLenet + R"(, "format": "deep_compression", "max_size_fraction": 0.1,
                                  "channels_sorted": false)") ==
        kWhere + "\"channels_sorted\" does not apply to \"format\": \"deep_compression\"");
  CHECK_THAT(parse_error(kLenet + R"(, "format": "deep_compression")"),
             Contains(kWhere + "a model task needs at least one check"));
}

// ---- "ptq_bits" -------------------------------------------------------------------------------

TEST_CASE("model formats: ptq_bits accepts every whole number from 2 to 8",
          "[grader][manifest][model_formats]") {
  for (int bits = 2; bits <= 8; ++bits) {
    INFO("ptq_bits " << bits);
    const g::Task t = parse_one(kVgg + ", \"ptq_bits\": " + std::to_string(bits));
    REQUIRE(t.ptq_bits.has_value());
    CHECK(*t.ptq_bits == bits);
    CHECK(t.format == g::ModelFormat::Checkpoint);
    // ptq_bits is a check of its own: nothing else is needed.
    CHECK_FALSE(t.max_accuracy_drop.has_value());
    CHECK_FALSE(t.max_distinct_values.has_value());
  }
  // With the other checks of a checkpoint, an explicit format, and on LeNet-300-100.
  const g::Task both = parse_one(kVgg + R"(, "format": "checkpoint", "ptq_bits": 4,
                                           "max_accuracy_drop": 0.01, "max_distinct_values": 16)");
  CHECK(both.ptq_bits == 4);
  CHECK(both.max_accuracy_drop == 0.01);
  CHECK(both.max_distinct_values == 16);
  CHECK(parse_one(kLenet + R"(, "ptq_bits": 3)").ptq_bits == 3);
  // A task without the field has no such check.
  CHECK_FALSE(parse_one(kVgg + R"(, "max_accuracy_drop": 0.01)").ptq_bits.has_value());
}

TEST_CASE("model formats: ptq_bits outside [2, 8] or not a whole number is an error",
          "[grader][manifest][model_formats]") {
  const std::string message = "\"ptq_bits\" must be a whole number in [2, 8], got ";
  // (the value as written, as the message shows it: JSON's own spelling of the number)
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"1", "1"},         {"9", "9"},         {"0", "0"},       {"-4", "-4"},
      {"4.0", "4.0"},     {"4.5", "4.5"},     {"\"4\"", "\"4\""}, {"true", "true"},
      {"null", "null"},   {"[4]", "[4]"},     {"256", "256"},   {"1e10", "10000000000.0"},
      {"18446744073709551615", "18446744073709551615"},
      {"-9223372036854775808", "-9223372036854775808"}};
  for (const auto& [value, shown] : bad) {
    INFO("ptq_bits " << value);
    CHECK(parse_error(kVgg + ", \"ptq_bits\": " + value) == kWhere + message + shown);
  }
}

TEST_CASE("model formats: format and ptq_bits belong to model tasks only",
          "[grader][manifest][model_formats]") {
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"exact", ""},
      {"accuracy", R"(, "model": "lenet300", "threshold": 0.8)"},
      {"manual", R"(, "answers_file": "ANSWERS.md")"},
      {"speed", ""}};
  for (const auto& [kind, fields] : kinds) {
    for (const std::string field : {"\"format\": \"checkpoint\"", "\"format\": \"quantized_vgg\"",
                                    "\"ptq_bits\": 4"}) {
      INFO(kind << " task with " << field);
      const std::string task = R"({"name": "m", "title": "M", "points": 1, "kind": ")" + kind +
                               "\"" + fields + ", " + field + "}";
      const std::string key = field.substr(1, field.find('"', 1) - 1);
      CHECK(error_of([&] { g::parse_manifest(manifest_with(task), kFile); }) ==
            kWhere + "\"" + key + "\" does not apply to a task of kind \"" + kind + "\"");
    }
  }
}

TEST_CASE("model formats: the at-least-one-check message names ptq_bits",
          "[grader][manifest][model_formats]") {
  CHECK(parse_error(kVgg) ==
        kWhere + "a model task needs at least one check: max_size_fraction, max_accuracy_drop, "
                 "max_accuracy_change, channels_sorted, channel_ratio, min_speedup, "
                 "max_distinct_values or ptq_bits");
}

TEST_CASE("model formats: hidden model tasks take the same fields",
          "[grader][manifest][model_formats]") {
  g::Manifest m = g::parse_manifest(manifest_with(model_task(kVgg + R"(, "ptq_bits": 4)")), kFile);
  const std::string hidden_file = "reference/lab2_quantization/manifest.hidden.json";
  g::merge_hidden_manifest(m, R"({"tasks": [
      {"name": "h", "title": "H", "points": 5, "kind": "model", "hidden": true,
       "model": "lenet300", "baseline": "lenet300_dense.safetensors",
       "format": "deep_compression", "max_size_fraction": 0.05}]})",
                           hidden_file);
  REQUIRE(m.tasks.size() == 2);
  CHECK(m.tasks[1].format == g::ModelFormat::DeepCompression);
  CHECK(m.tasks[1].visibility == "after_due_date");
  CHECK(error_of([&] {
          g::merge_hidden_manifest(m, R"({"tasks": [
              {"name": "h2", "title": "H", "points": 5, "kind": "model", "hidden": true,
               "model": "vgg", "baseline": "vgg_dense.safetensors",
               "format": "quantized_vgg", "ptq_bits": 4, "max_accuracy_drop": 0.01}]})",
                                   hidden_file);
        }) == hidden_file + ": tasks[0] (\"h2\"): \"ptq_bits\" does not apply to \"format\": "
                            "\"quantized_vgg\"");
}

// The repository's Lab 2 declares one task of each format and one with ptq_bits.
TEST_CASE("model formats: Lab 2's manifest declares each format", "[grader][manifest][model_formats]") {
  const g::Manifest m = g::load_manifest(g::find_lab(EFFML_SOURCE_DIR, "lab2"));
  const g::Task* int8 = m.find_task("int8_vgg");
  const g::Task* qat = m.find_task("qat_4bit");
  const g::Task* dc = m.find_task("deep_compression_lenet300");
  REQUIRE(int8 != nullptr);
  REQUIRE(qat != nullptr);
  REQUIRE(dc != nullptr);
  CHECK(int8->format == g::ModelFormat::QuantizedVgg);
  CHECK_FALSE(int8->ptq_bits.has_value());
  CHECK(qat->format == g::ModelFormat::Checkpoint);
  CHECK(qat->ptq_bits == 4);
  CHECK(dc->format == g::ModelFormat::DeepCompression);
  CHECK(dc->model == "lenet300");
  CHECK(dc->max_size_fraction.has_value());
}
