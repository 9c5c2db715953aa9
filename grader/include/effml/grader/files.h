/// \file files.h
/// \brief Small file-system and text helpers shared by the grader's parts.
///
/// Every function that touches the disk throws effml::Error naming the path and the system's
/// reason, so a grader failure always says which file was the problem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace effml::grader {

/// The whole content of a file (binary-safe).
/// \throws effml::Error naming the file when it cannot be opened or read
std::string read_file(const std::string& path);

/// Writes `content` to `path + ".tmp"` and renames it to `path`, so a reader never sees a
/// half-written file. The parent folder must exist.
/// \throws effml::Error naming the file when it cannot be written
void write_file(const std::string& path, const std::string& content);

/// Creates a folder and its missing parents (like `mkdir -p`).
/// \throws effml::Error naming the folder
void make_dirs(const std::string& path);

/// Removes a file or a folder tree if it exists; never throws.
void remove_tree(const std::string& path) noexcept;

/// A fresh folder `parent/prefixXXXXXX` (created with mode 0755).
/// \throws effml::Error naming `parent`
std::string make_temp_dir(const std::string& parent, const std::string& prefix);

/// `path` made absolute against the current folder and normalised lexically (no `.`/`..`).
std::string absolute_path(const std::string& path);

/// True when `path` exists and is a folder.
bool is_dir(const std::string& path);

/// True when `path` is a regular file reached without following a symbolic link (a symbolic
/// link in a submission could point at a solution, so it never counts as a file).
bool is_plain_file(const std::string& path);

/// Hard-links `from` to `to` (same file system), or copies it when linking is impossible.
/// Permissions are kept. Never for a file placed in a sandbox's workdir: the sandbox hands the
/// workdir's files to the child's user, which would hand over the original too.
/// \throws effml::Error naming both paths
void link_or_copy(const std::string& from, const std::string& to);

/// Copies `from` to `to` (replacing it), keeping the permissions.
/// \throws effml::Error naming both paths
void copy_file(const std::string& from, const std::string& to);

/// 64-bit FNV-1a hash of `data`, continuing from `seed` (the FNV offset basis by default).
/// Used to name cache entries; entries are verified byte for byte, so collisions are harmless.
uint64_t fnv1a64(const std::string& data, uint64_t seed = 14695981039346656037ULL);

/// 16 lower-case hex digits.
std::string hex64(uint64_t value);

/// The first `max_lines` lines of `text`, followed by a line "[... N more lines]" when some were
/// cut. Lines longer than `max_line_chars` are cut too.
std::string first_lines(const std::string& text, int max_lines, std::size_t max_line_chars = 300);

/// `text` without trailing spaces and newlines.
std::string trim_right(const std::string& text);

/// Splits `text` at newlines (a final newline does not make an empty last line).
std::vector<std::string> split_lines(const std::string& text);

}  // namespace effml::grader
