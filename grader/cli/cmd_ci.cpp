// `effml ci-template --out DIR`: write the instructor's CI files for one lab.
//
// The templates live in grader/templates/ of the repository (readable there too); @LAB@,
// @LAB_DIR@ and @STUDENT_FILES@ are replaced with the lab's short name, folder name and the
// manifest's student files.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "effml/error.h"
#include "effml/grader/config.h"
#include "effml/grader/files.h"
#include "effml/grader/manifest.h"

namespace effml::cli {

namespace {

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
    text.replace(at, from.size(), to);
    at += to.size();
  }
  return text;
}

struct Template {
  const char* source;  // under grader/templates/
  const char* target;  // under --out
  bool executable;
};

constexpr Template kTemplates[] = {
    {"github/grade.yml", ".github/workflows/grade.yml", false},
    {"gradescope/setup.sh", "gradescope/setup.sh", true},
    {"gradescope/run_autograder", "gradescope/run_autograder", true},
};

}  // namespace

void add_ci_template_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "ci-template",
      "Write the CI files that grade a lab: a GitHub Actions workflow "
      "(.github/workflows/grade.yml) and a Gradescope autograder (gradescope/setup.sh, "
      "gradescope/run_autograder). grader/README.md says how to use them.");
  struct Args {
    std::string out;
    std::string lab;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--out,-o", args->out, "Folder to write into")->required();
  cmd->add_option("--lab", args->lab, "The lab (default: the repository's only lab)");
  cmd->callback([args] {
    const auto config = grader::GraderConfig::load(grader::GraderConfig::default_path());
    const std::string repo = config.source_dir;
    std::string lab = args->lab;
    if (lab.empty()) {
      std::vector<std::string> labs;
      for (const auto& e : std::filesystem::directory_iterator(repo + "/labs")) {
        if (std::filesystem::exists(e.path() / "manifest.json")) {
          labs.push_back(e.path().filename().string());
        }
      }
      EFFML_CHECK(labs.size() == 1, "ci-template: say which lab with --lab (the repository has "
                                        << labs.size() << " labs)");
      lab = labs[0];
    }
    grader::LabPaths paths = grader::find_lab(repo, lab);
    paths.reference_dir.clear();  // the public manifest is enough: names and files
    const grader::Manifest manifest = grader::load_manifest(paths);
    std::string files;
    for (const auto& f : manifest.student_files) files += (files.empty() ? "" : " ") + f;

    for (const Template& t : kTemplates) {
      const std::string from = repo + "/grader/templates/" + t.source;
      std::string text = grader::read_file(from);
      text = replace_all(text, "@LAB_DIR@", manifest.lab);
      text = replace_all(text, "@LAB@", manifest.short_name);
      text = replace_all(text, "@STUDENT_FILES@", files);
      const std::string to = args->out + "/" + t.target;
      grader::make_dirs(std::filesystem::path(to).parent_path().string());
      grader::write_file(to, text);
      if (t.executable) ::chmod(to.c_str(), 0755);
      std::fprintf(stderr, "effml ci-template: wrote %s\n", to.c_str());
    }
  });
}

}  // namespace effml::cli
