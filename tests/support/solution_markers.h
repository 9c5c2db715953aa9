/// \file solution_markers.h
/// \brief Solution regions of a lab source file, and the check that a stub is its reference
/// solution with only those regions changed.
///
/// A lab's stub (labs/<lab>/<file>.cpp) and its reference solution (reference/<lab>/<file>.cpp)
/// are one text: they differ only inside solution regions. A solution region is every line
/// strictly between a line `// BEGIN SOLUTION` and the next line `// END SOLUTION`. Each marker
/// stands alone on its line; leading spaces are allowed, nothing else (no tab, no trailing
/// space, no text after the marker), so a line that only mentions the markers is not one. A
/// region without its END runs to the end of the file; an END without a BEGIN is an ordinary
/// line. Lines are compared with their leading spaces inside a region removed, and as written
/// outside one.
#pragma once

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace effml::testing {

/// The whole text of the file at `path`. Fails the current test case (a Catch2 REQUIRE naming
/// the path) when the file cannot be opened.
inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  INFO("reading " << path);
  REQUIRE(in.good());
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

/// A source text split at its solution markers.
struct SplitSource {
  /// The text with every region's lines removed; the marker lines stay, so two texts whose
  /// regions sit in different places differ here. Every line ends with '\n'.
  std::string outside;
  /// The lines of each region in file order, leading spaces removed, each ending with '\n';
  /// "" for a region with no line.
  std::vector<std::string> regions;
};

/// Splits `text` at its `// BEGIN SOLUTION` / `// END SOLUTION` lines (see the file comment).
inline SplitSource split_solution_regions(const std::string& text) {
  SplitSource s;
  std::istringstream in(text);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(' ');
    const std::string trimmed = first == std::string::npos ? "" : line.substr(first);
    if (trimmed == "// BEGIN SOLUTION") {
      inside = true;
      s.regions.emplace_back();
      s.outside += line + "\n";
    } else if (trimmed == "// END SOLUTION") {
      inside = false;
      s.outside += line + "\n";
    } else if (inside) {
      s.regions.back() += trimmed + "\n";
    } else {
      s.outside += line + "\n";
    }
  }
  return s;
}

/// A stub and its reference solution, each split at its solution markers.
struct StubAndSolution {
  SplitSource stub;      ///< the student's starting file
  SplitSource solution;  ///< the reference solution
};

/// Reads the stub at `stub_path` and the solution at `solution_path` (REQUIRE: both readable),
/// checks that their text outside the solution regions is the same (a CHECK: same functions,
/// signatures, comments and given code) and requires the same number of regions in both (a
/// REQUIRE, so that the caller may index the regions of one by those of the other). What a
/// stub region must contain is the caller's to check, on the returned texts.
inline StubAndSolution check_stub_matches_solution(const std::string& stub_path,
                                                   const std::string& solution_path) {
  StubAndSolution both{split_solution_regions(read_text(stub_path)),
                       split_solution_regions(read_text(solution_path))};
  INFO("stub " << stub_path << ", solution " << solution_path);
  CHECK(both.stub.outside == both.solution.outside);
  REQUIRE(both.stub.regions.size() == both.solution.regions.size());
  return both;
}

}  // namespace effml::testing
