// The symbol allow-list of submissions (see symbols.h).
#include "effml/grader/symbols.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <sstream>

#include "effml/grader/files.h"

namespace effml::grader {

namespace {

// "vtable for effml::Module" -> "effml::Module": the entity a special symbol belongs to.
std::string entity_of(const std::string& demangled) {
  static const char* const prefixes[] = {"vtable for ",
                                         "typeinfo for ",
                                         "typeinfo name for ",
                                         "VTT for ",
                                         "construction vtable for ",
                                         "guard variable for ",
                                         "non-virtual thunk to ",
                                         "virtual thunk to "};
  for (const char* p : prefixes) {
    const std::string prefix = p;
    if (demangled.compare(0, prefix.size(), prefix) == 0) return demangled.substr(prefix.size());
  }
  return demangled;
}

std::string file_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

ObjectSymbols parse_nm_objects(const std::string& nm_output) {
  ObjectSymbols out;
  for (const std::string& line : split_lines(nm_output)) {
    // "lab0.o: _ZN5effml6TensorC1Ev U" with -A -P (value and size follow for defined ones).
    std::istringstream in(line);
    std::string file, name, type;
    if (!(in >> file >> name >> type)) continue;
    if (file.empty() || file.back() != ':') continue;
    file.pop_back();
    if (type == "U") {
      out.undefined[file].push_back(name);
    } else if (type != "w" && type != "v") {
      out.defined.insert(name);
    }
  }
  return out;
}

std::set<std::string> parse_nm_defined(const std::string& nm_output) {
  std::set<std::string> out;
  for (const std::string& line : split_lines(nm_output)) {
    std::istringstream in(line);
    std::string name, type;
    if (!(in >> name >> type)) continue;
    if (!name.empty() && name.back() == ':') continue;  // "libfoo.a[bar.o]:" member headers
    if (type == "U" || type == "w" || type == "v") continue;
    const auto at = name.find('@');
    if (at != std::string::npos) name = name.substr(0, at);
    if (!name.empty()) out.insert(name);
  }
  return out;
}

std::string demangle(const std::string& symbol) {
  if (symbol.compare(0, 2, "_Z") != 0) return symbol;
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> text(
      abi::__cxa_demangle(symbol.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 && text ? std::string(text.get()) : symbol;
}

std::string check_symbols(const ObjectSymbols& objects, const std::set<std::string>& core,
                          const std::set<std::string>& runtime,
                          const std::vector<std::string>& forbidden) {
  std::vector<std::string> problems;
  std::size_t total = 0;
  for (const auto& [file, names] : objects.undefined) {
    std::set<std::string> seen;
    for (const std::string& name : names) {
      if (!seen.insert(name).second) continue;
      if (objects.defined.count(name) != 0) continue;
      const std::string readable = demangle(name);
      const std::string entity = entity_of(readable);
      const bool effml_symbol = entity.compare(0, 7, "effml::") == 0;
      std::string why;
      if (effml_symbol && core.count(name) != 0) {
        for (const std::string& prefix : forbidden) {
          if (entity.compare(0, prefix.size(), prefix) == 0) {
            why = "which this lab does not allow (you are asked to write it yourself)";
            break;
          }
        }
        if (why.empty()) continue;
      } else if (runtime.count(name) != 0) {
        continue;
      } else if (effml_symbol) {
        why = "which is not part of the effml core library";
      } else {
        why =
            "which is neither defined in your files nor part of the effml core or the C/C++ "
            "runtime";
      }
      ++total;
      if (problems.size() < 10) {
        problems.push_back(file_name(file) + " uses " + readable + ", " + why);
      }
    }
  }
  std::string message;
  for (const std::string& p : problems) message += (message.empty() ? "" : "\n") + p;
  if (total > problems.size()) {
    message += "\n[... " + std::to_string(total - problems.size()) + " more symbols]";
  }
  return message;
}

}  // namespace effml::grader
