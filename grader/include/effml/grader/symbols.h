/// \file symbols.h
/// \brief The symbol allow-list of a submission: what its object files may call.
///
/// A submission's objects may use only
/// - symbols that its own objects define (one student file calling another);
/// - symbols of the effml core library (`effml::...`, with their vtables and typeinfo), except
///   those matching the lab's `forbidden_symbols` prefixes;
/// - symbols exported by the C and C++ runtime: libc, libm, libstdc++, libgcc and libgomp.
///
/// Anything else (a function of the reference solution, a library the build does not link)
/// fails the build with a message naming the symbol and the file that uses it, instead of an
/// obscure linker error or, worse, a link that succeeds against something it should not.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace effml::grader {

/// The symbols of a set of object files, as `nm` reports them (mangled names).
struct ObjectSymbols {
  std::map<std::string, std::vector<std::string>> undefined;  ///< file -> undefined symbols
  std::set<std::string> defined;                              ///< defined in any of the files
};

/// Parses `nm -P -A` output ("file.o: symbol T value size" lines; undefined symbols have type
/// "U", weak undefined ones "w" or "v", which are skipped since they may stay unresolved).
ObjectSymbols parse_nm_objects(const std::string& nm_output);

/// Parses `nm -P` output of a library into the set of names it defines (version suffixes such as
/// `@@GLIBC_2.14` removed).
std::set<std::string> parse_nm_defined(const std::string& nm_output);

/// Demangled form of a C++ symbol ("_ZN5effml6TensorC1Ev" -> "effml::Tensor::Tensor()"); other
/// names are returned unchanged.
std::string demangle(const std::string& symbol);

/// Checks every undefined symbol of `objects` against the allow-list above.
/// \param objects     the undefined symbols of each of the student's object files (parse_nm_objects)
/// \param core        the names the core library defines
/// \param runtime     the names the C/C++ runtime libraries export
/// \param forbidden   prefixes of demangled names that are not allowed even though the core
///                    defines them (e.g. "effml::Linear::")
/// \returns "" when everything is allowed, else a message with one line per offending symbol
///          (at most 10), e.g. "lab0.cpp uses lab0::secret_helper(), which is neither defined
///          in your files nor part of the effml core or the C/C++ runtime"
std::string check_symbols(const ObjectSymbols& objects, const std::set<std::string>& core,
                          const std::set<std::string>& runtime,
                          const std::vector<std::string>& forbidden);

}  // namespace effml::grader
