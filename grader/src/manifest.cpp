// Parsing and checking manifest.json (see manifest.h).
#include "effml/grader/manifest.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "effml/error.h"
#include "effml/grader/files.h"
#include "effml/models.h"

namespace effml::grader {

namespace {

using nlohmann::json;

// Where we are in the file, for messages: "labs/lab0_tensor/manifest.json: tasks[2] (\"x\")".
struct Context {
  std::string file;
  std::string where;  // "" at the top level
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(file + ": " + (where.empty() ? "" : where + ": ") + what);
  }
};

std::string shown(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

void check_known_fields(const json& obj, const std::set<std::string>& known, const Context& ctx) {
  for (const auto& item : obj.items()) {
    if (known.count(item.key()) == 0) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      ctx.fail("unknown field \"" + item.key() + "\" (known fields: " + list + ")");
    }
  }
}

std::string get_string(const json& obj, const std::string& key, const Context& ctx,
                       bool required = true, const std::string& fallback = "") {
  if (!obj.contains(key)) {
    if (required) ctx.fail("missing field \"" + key + "\"");
    return fallback;
  }
  const json& v = obj[key];
  if (!v.is_string() || v.get<std::string>().empty()) {
    ctx.fail("\"" + key + "\" must be a non-empty string, got " + shown(v));
  }
  return v.get<std::string>();
}

double get_number(const json& obj, const std::string& key, const Context& ctx, double lo, double hi,
                  bool lo_open, double fallback, bool required, const std::string& range_text) {
  if (!obj.contains(key)) {
    if (required) ctx.fail("missing field \"" + key + "\"");
    return fallback;
  }
  const json& v = obj[key];
  const bool ok = v.is_number() && std::isfinite(v.get<double>()) &&
                  (lo_open ? v.get<double>() > lo : v.get<double>() >= lo) && v.get<double>() <= hi;
  if (!ok) ctx.fail("\"" + key + "\" must be a number " + range_text + ", got " + shown(v));
  return v.get<double>();
}

std::vector<std::string> get_strings(const json& obj, const std::string& key, const Context& ctx,
                                     bool required) {
  if (!obj.contains(key)) {
    if (required) ctx.fail("missing field \"" + key + "\"");
    return {};
  }
  const json& v = obj[key];
  if (!v.is_array()) ctx.fail("\"" + key + "\" must be an array of strings, got " + shown(v));
  std::vector<std::string> out;
  for (const auto& item : v) {
    if (!item.is_string() || item.get<std::string>().empty()) {
      ctx.fail("\"" + key + "\" must hold non-empty strings, got " + shown(item));
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

// A file name inside the lab folder: no folders, no way out of it.
void check_plain_name(const std::string& name, const std::string& key, const Context& ctx) {
  if (name.find('/') != std::string::npos || name.find('\\') != std::string::npos || name == "." ||
      name == ".." || name[0] == '.') {
    ctx.fail("\"" + key + "\": '" + name +
             "' must be a plain file name in the lab folder (no "
             "'/', no '..', not hidden)");
  }
}

RunLimits parse_limits(const json& obj, const RunLimits& base, const Context& ctx) {
  if (!obj.is_object()) ctx.fail("\"limits\" must be an object, got " + shown(obj));
  check_known_fields(
      obj, {"wall_seconds", "cpu_seconds", "memory_mb", "output_kb", "file_mb", "processes"}, ctx);
  const std::string pos = "> 0";
  RunLimits l = base;
  l.wall_seconds = get_number(obj, "wall_seconds", ctx, 0, 86400, true, base.wall_seconds, false,
                              "in (0, 86400] (seconds)");
  l.cpu_seconds = get_number(obj, "cpu_seconds", ctx, 0, 86400, true, base.cpu_seconds, false,
                             "in (0, 86400] (seconds)");
  l.memory_mb = static_cast<int64_t>(get_number(obj, "memory_mb", ctx, 16, 1 << 20, false,
                                                static_cast<double>(base.memory_mb), false,
                                                "in [16, 1048576] (MiB)"));
  l.output_kb = static_cast<int64_t>(get_number(obj, "output_kb", ctx, 1, 1 << 20, false,
                                                static_cast<double>(base.output_kb), false,
                                                "in [1, 1048576] (KiB)"));
  l.file_mb = static_cast<int64_t>(get_number(obj, "file_mb", ctx, 1, 1 << 20, false,
                                              static_cast<double>(base.file_mb), false,
                                              "in [1, 1048576] (MiB)"));
  l.processes =
      static_cast<int64_t>(get_number(obj, "processes", ctx, 1, 4096, false,
                                      static_cast<double>(base.processes), false, "in [1, 4096]"));
  return l;
}

Tolerance parse_tolerance(const json& obj, const Context& ctx) {
  if (!obj.is_object())
    ctx.fail("a tolerance must be {\"rtol\": r, \"atol\": a}, got " + shown(obj));
  check_known_fields(obj, {"rtol", "atol"}, ctx);
  Tolerance t;
  t.rtol = get_number(obj, "rtol", ctx, 0, 1e6, false, 0, false, ">= 0");
  t.atol = get_number(obj, "atol", ctx, 0, 1e30, false, 0, false, ">= 0");
  return t;
}

Tolerances parse_tolerances(const json& obj, const Context& ctx) {
  if (!obj.is_object())
    ctx.fail("\"tolerance\" must be an object keyed by dtype, got " + shown(obj));
  check_known_fields(obj, {"float32", "int8", "int32"}, ctx);
  Tolerances t;
  if (obj.contains("float32")) t.float32 = parse_tolerance(obj["float32"], ctx);
  if (obj.contains("int8")) t.int8 = parse_tolerance(obj["int8"], ctx);
  if (obj.contains("int32")) t.int32 = parse_tolerance(obj["int32"], ctx);
  return t;
}

TaskKind parse_kind(const std::string& s, const Context& ctx) {
  if (s == "exact") return TaskKind::Exact;
  if (s == "accuracy") return TaskKind::Accuracy;
  if (s == "manual") return TaskKind::Manual;
  if (s == "model") return TaskKind::Model;
  if (s == "speed") return TaskKind::Speed;
  ctx.fail("\"kind\" must be one of exact, accuracy, manual, model, speed; got \"" + s + "\"");
}

Task parse_task(const json& obj, std::size_t index, const RunLimits& lab_limits, bool in_hidden,
                const std::string& file) {
  Context ctx{file, "tasks[" + std::to_string(index) + "]"};
  if (!obj.is_object()) ctx.fail("a task must be an object, got " + shown(obj));
  Task t;
  t.name = get_string(obj, "name", ctx);
  ctx.where += " (\"" + t.name + "\")";
  for (char c : t.name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      ctx.fail("\"name\" may hold only a-z, 0-9 and '_'");
    }
  }
  check_known_fields(
      obj,
      {"name", "title", "points", "kind", "visibility", "tags", "hidden", "limits", "seeds",
       "tolerance", "model", "threshold", "calibration", "answers_file", "description",
       "baseline", "max_size_fraction", "max_accuracy_drop", "max_accuracy_change",
       "channels_sorted", "channel_ratio", "min_speedup", "max_distinct_values", "format",
       "ptq_bits"},
      ctx);
  t.title = get_string(obj, "title", ctx);
  t.points = get_number(obj, "points", ctx, 0, 1e6, false, 0, true, ">= 0");
  t.kind = parse_kind(get_string(obj, "kind", ctx), ctx);
  if (obj.contains("hidden") && !obj["hidden"].is_boolean()) {
    ctx.fail("\"hidden\" must be true or false, got " + shown(obj["hidden"]));
  }
  t.hidden = obj.value("hidden", false);
  if (t.hidden && !in_hidden) {
    ctx.fail(
        "a hidden task belongs in reference/<lab>/manifest.hidden.json, not in the public "
        "manifest (the student release must carry no trace of it)");
  }
  if (!t.hidden && in_hidden) ctx.fail("tasks of manifest.hidden.json must say \"hidden\": true");
  t.visibility = get_string(obj, "visibility", ctx, false, t.hidden ? "after_due_date" : "visible");
  static const std::set<std::string> visibilities = {"visible", "hidden", "after_due_date",
                                                     "after_published"};
  if (visibilities.count(t.visibility) == 0) {
    ctx.fail("\"visibility\" must be visible, hidden, after_due_date or after_published; got \"" +
             t.visibility + "\"");
  }
  t.tags = get_strings(obj, "tags", ctx, false);
  t.limits = obj.contains("limits") ? parse_limits(obj["limits"], lab_limits, ctx) : lab_limits;
  if (obj.contains("description")) get_string(obj, "description", ctx);
  if (obj.contains("calibration")) t.calibration = get_string(obj, "calibration", ctx);

  auto forbid = [&](const char* key) {
    if (obj.contains(key)) {
      ctx.fail(std::string("\"") + key + "\" does not apply to a task of kind \"" +
               task_kind_name(t.kind) + "\"");
    }
  };
  if (t.kind == TaskKind::Exact) {
    t.seeds =
        static_cast<int>(get_number(obj, "seeds", ctx, 1, 1000, false, 1, false, "in [1, 1000]"));
    if (obj.contains("seeds") && !obj["seeds"].is_number_integer()) {
      ctx.fail("\"seeds\" must be a whole number, got " + shown(obj["seeds"]));
    }
    if (obj.contains("tolerance")) t.tolerance = parse_tolerances(obj["tolerance"], ctx);
  } else {
    forbid("seeds");
    forbid("tolerance");
  }
  if (t.kind == TaskKind::Accuracy || t.kind == TaskKind::Model) {
    t.model = get_string(obj, "model", ctx);
    const auto names = model_names();
    if (std::find(names.begin(), names.end(), t.model) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      ctx.fail("\"model\": unknown model \"" + t.model + "\" (known: " + list + ")");
    }
  } else {
    forbid("model");
  }
  if (t.kind == TaskKind::Accuracy) {
    t.threshold = get_number(obj, "threshold", ctx, 0, 1, true, 0, true,
                             "in (0, 1] (a fraction: 0.86 means 86%)");
  } else {
    forbid("threshold");
  }
  const char* model_checks[] = {"max_size_fraction", "max_accuracy_drop", "max_accuracy_change",
                                "channels_sorted", "channel_ratio", "min_speedup",
                                "max_distinct_values", "ptq_bits"};
  if (t.kind == TaskKind::Model) {
    t.baseline = get_string(obj, "baseline", ctx);
    check_plain_name(t.baseline, "baseline", ctx);
    if (obj.contains("format")) {
      const std::string f = get_string(obj, "format", ctx);
      if (f == "checkpoint") {
        t.format = ModelFormat::Checkpoint;
      } else if (f == "quantized_vgg") {
        t.format = ModelFormat::QuantizedVgg;
      } else if (f == "deep_compression") {
        t.format = ModelFormat::DeepCompression;
      } else {
        ctx.fail("\"format\" must be \"checkpoint\", \"quantized_vgg\" or \"deep_compression\", "
                 "got \"" + f + "\"");
      }
    }
    // A fraction in [0, 1] ((0, 1] when zero makes no sense), as 0.005 for half a point.
    auto fraction = [&](const char* key, bool zero_ok) -> std::optional<double> {
      if (!obj.contains(key)) return std::nullopt;
      return get_number(obj, key, ctx, 0, 1, !zero_ok, 0, false,
                        std::string(zero_ok ? "in [0, 1]" : "in (0, 1]") +
                            " (a fraction: 0.005 means half a point of accuracy)");
    };
    t.max_size_fraction = fraction("max_size_fraction", false);
    t.max_accuracy_drop = fraction("max_accuracy_drop", true);
    t.max_accuracy_change = fraction("max_accuracy_change", true);
    t.channel_ratio = fraction("channel_ratio", true);
    if (t.channel_ratio && *t.channel_ratio >= 1) {
      ctx.fail("\"channel_ratio\" must be below 1 (a pruned conv keeps at least one channel)");
    }
    if (obj.contains("min_speedup")) {
      t.min_speedup = get_number(obj, "min_speedup", ctx, 0, 1000, true, 0, true, "in (0, 1000]");
    }
    if (obj.contains("max_distinct_values")) {
      if (!obj["max_distinct_values"].is_number_integer() ||
          obj["max_distinct_values"].get<int64_t>() < 1) {
        ctx.fail("\"max_distinct_values\" must be a whole number >= 1, got " +
                 shown(obj["max_distinct_values"]));
      }
      t.max_distinct_values = obj["max_distinct_values"].get<int64_t>();
    }
    if (obj.contains("ptq_bits")) {
      if (!obj["ptq_bits"].is_number_integer() || obj["ptq_bits"].get<int64_t>() < 2 ||
          obj["ptq_bits"].get<int64_t>() > 8) {
        ctx.fail("\"ptq_bits\" must be a whole number in [2, 8], got " + shown(obj["ptq_bits"]));
      }
      t.ptq_bits = static_cast<int>(obj["ptq_bits"].get<int64_t>());
    }
    if (obj.contains("channels_sorted")) {
      if (!obj["channels_sorted"].is_boolean()) {
        ctx.fail("\"channels_sorted\" must be true or false, got " + shown(obj["channels_sorted"]));
      }
      t.channels_sorted = obj["channels_sorted"].get<bool>();
    }
    if (t.channel_ratio && t.model != "vgg") {
      ctx.fail("\"channel_ratio\" applies to the model \"vgg\" only");
    }
    if (t.format == ModelFormat::QuantizedVgg) {
      if (t.model != "vgg") ctx.fail("\"format\": \"quantized_vgg\" needs the model \"vgg\"");
      for (const char* key : {"max_size_fraction", "channels_sorted", "channel_ratio",
                              "min_speedup", "max_distinct_values", "ptq_bits"}) {
        if (obj.contains(key)) {
          ctx.fail(std::string("\"") + key + "\" does not apply to \"format\": \"quantized_vgg\"");
        }
      }
    }
    if (t.format == ModelFormat::DeepCompression) {
      for (const char* key : {"channels_sorted", "channel_ratio", "min_speedup", "ptq_bits"}) {
        if (obj.contains(key)) {
          ctx.fail(std::string("\"") + key +
                   "\" does not apply to \"format\": \"deep_compression\"");
        }
      }
    }
    const bool any = t.channels_sorted || t.max_size_fraction || t.max_accuracy_drop ||
                     t.max_accuracy_change || t.channel_ratio || t.min_speedup ||
                     t.max_distinct_values || t.ptq_bits;
    if (!any) {
      ctx.fail("a model task needs at least one check: max_size_fraction, max_accuracy_drop, "
               "max_accuracy_change, channels_sorted, channel_ratio, min_speedup, "
               "max_distinct_values or ptq_bits");
    }
  } else {
    forbid("baseline");
    forbid("format");
    for (const char* key : model_checks) forbid(key);
  }
  if (t.kind == TaskKind::Manual) {
    t.answers_file = get_string(obj, "answers_file", ctx);
    check_plain_name(t.answers_file, "answers_file", ctx);
  } else {
    forbid("answers_file");
  }
  return t;
}

json parse_json(const std::string& text, const std::string& file) {
  try {
    json j = json::parse(text);
    if (!j.is_object()) throw Error(file + ": expected a JSON object at the top level");
    return j;
  } catch (const json::parse_error& e) {
    throw Error(file + ": not valid JSON: " + e.what());
  }
}

void add_tasks(Manifest& m, const json& tasks, bool in_hidden, const std::string& file) {
  Context ctx{file, ""};
  if (!tasks.is_array() || tasks.empty()) {
    ctx.fail("\"tasks\" must be a non-empty array, got " + shown(tasks));
  }
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    Task t = parse_task(tasks[i], i, m.limits, in_hidden, file);
    if (m.find_task(t.name) != nullptr) {
      ctx.fail("tasks[" + std::to_string(i) + "]: the task name \"" + t.name + "\" is used twice" +
               (in_hidden ? " (once in the public manifest)" : ""));
    }
    m.tasks.push_back(std::move(t));
  }
}

}  // namespace

const char* task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::Exact:
      return "exact";
    case TaskKind::Accuracy:
      return "accuracy";
    case TaskKind::Manual:
      return "manual";
    case TaskKind::Model:
      return "model";
    case TaskKind::Speed:
      return "speed";
  }
  return "unknown";
}

const Task* Manifest::find_task(const std::string& name) const {
  for (const Task& t : tasks) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

double Manifest::total_points() const {
  double total = 0;
  for (const Task& t : tasks) total += t.points;
  return total;
}

Manifest parse_manifest(const std::string& json_text, const std::string& file) {
  const json j = parse_json(json_text, file);
  Context ctx{file, ""};
  check_known_fields(j,
                     {"lab", "short_name", "title", "student_files", "public_headers", "runner",
                      "limits", "tasks", "forbidden_symbols", "description"},
                     ctx);
  Manifest m;
  m.path = file;
  m.lab = get_string(j, "lab", ctx);
  m.short_name = get_string(j, "short_name", ctx);
  m.title = get_string(j, "title", ctx);
  m.student_files = get_strings(j, "student_files", ctx, true);
  if (m.student_files.empty()) ctx.fail("\"student_files\" must name at least one file");
  for (const auto& f : m.student_files) check_plain_name(f, "student_files", ctx);
  m.public_headers = get_strings(j, "public_headers", ctx, false);
  for (const auto& f : m.public_headers) check_plain_name(f, "public_headers", ctx);
  for (const auto& f : m.student_files) {
    if (std::find(m.public_headers.begin(), m.public_headers.end(), f) != m.public_headers.end()) {
      ctx.fail("'" + f + "' is both a student file and a public header");
    }
  }
  m.runner = get_string(j, "runner", ctx);
  check_plain_name(m.runner, "runner", ctx);
  if (std::find(m.student_files.begin(), m.student_files.end(), m.runner) !=
      m.student_files.end()) {
    ctx.fail("the runner '" + m.runner + "' cannot be a student file: it is the grader's driver");
  }
  m.forbidden_symbols = get_strings(j, "forbidden_symbols", ctx, false);
  if (j.contains("description")) get_string(j, "description", ctx);
  if (j.contains("limits")) m.limits = parse_limits(j["limits"], RunLimits{}, ctx);
  if (!j.contains("tasks")) ctx.fail("missing field \"tasks\"");
  add_tasks(m, j["tasks"], false, file);
  return m;
}

void merge_hidden_manifest(Manifest& manifest, const std::string& json_text,
                           const std::string& file) {
  const json j = parse_json(json_text, file);
  Context ctx{file, ""};
  check_known_fields(j, {"tasks", "description"}, ctx);
  if (!j.contains("tasks")) ctx.fail("missing field \"tasks\"");
  add_tasks(manifest, j["tasks"], true, file);
  manifest.hidden_path = file;
}

LabPaths find_lab(const std::string& repo_root, const std::string& lab) {
  namespace fs = std::filesystem;
  const std::string labs = repo_root + "/labs";
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(labs, ec)) {
    if (entry.is_directory() && fs::exists(entry.path() / "manifest.json")) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (name == lab || name.substr(0, name.find('_')) == lab) {
      LabPaths p;
      p.name = name;
      p.lab_dir = labs + "/" + name;
      const std::string ref = repo_root + "/reference/" + name;
      if (is_dir(ref)) p.reference_dir = ref;
      return p;
    }
  }
  std::string list;
  for (const auto& n : names)
    list += (list.empty() ? "" : ", ") + n.substr(0, n.find('_')) + " (" + n + ")";
  throw Error("unknown lab '" + lab + "'; the labs in " + labs + " are: " +
              (list.empty() ? std::string("none (no folder with a manifest.json)") : list));
}

Manifest load_manifest(const LabPaths& paths) {
  const std::string file = paths.lab_dir + "/manifest.json";
  Manifest m = parse_manifest(read_file(file), file);
  if (m.lab != paths.name) {
    throw Error(file + ": \"lab\" is \"" + m.lab + "\" but the folder is " + paths.name);
  }
  if (!is_plain_file(paths.lab_dir + "/" + m.runner)) {
    throw Error(file + ": the runner " + m.runner + " is not in " + paths.lab_dir);
  }
  for (const auto& h : m.public_headers) {
    if (!is_plain_file(paths.lab_dir + "/" + h)) {
      throw Error(file + ": the public header " + h + " is not in " + paths.lab_dir);
    }
  }
  if (!paths.reference_dir.empty()) {
    const std::string hidden = paths.reference_dir + "/manifest.hidden.json";
    if (is_plain_file(hidden)) merge_hidden_manifest(m, read_file(hidden), hidden);
  }
  for (const Task& t : m.tasks) {
    if (!t.baseline.empty() && !is_plain_file(paths.lab_dir + "/" + t.baseline)) {
      throw Error(file + ": task \"" + t.name + "\": the baseline " + t.baseline + " is not in " +
                  paths.lab_dir);
    }
  }
  return m;
}

}  // namespace effml::grader
