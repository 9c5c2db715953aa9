#include "effml/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "atomic_file.h"

// Tensor storage is written and read as is: the format is little-endian, and so must the host be.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.cpp assumes a little-endian host"
#endif

namespace effml {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw Error(path + ": " + problem);
}

// One tensor as the header describes it.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0;  // byte range [begin, end) in the data area
  uint64_t end = 0;
};

// A parsed and validated header.
struct Header {
  std::vector<Entry> entries;  // sorted by data offset
  std::map<std::string, std::string> metadata;
};

bool dtype_from_name(const std::string& name, DType& out) {
  if (name == "F32") out = DType::Float32;
  else if (name == "I8") out = DType::Int8;
  else if (name == "I32") out = DType::Int32;
  else return false;
  return true;
}

// Tensor sizes above this are not credible in a header (and their products cannot overflow).
constexpr uint64_t kMaxBytes = uint64_t{1} << 40;

std::string offsets_str(uint64_t b, uint64_t e) {
  return "[" + std::to_string(b) + ", " + std::to_string(e) + "]";
}

// Parses the JSON header and checks every entry against a data area of `data_size` bytes.
Header parse_header(const std::string& path, const std::string& text, uint64_t data_size) {
  using nlohmann::json;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) fail(path, "header is JSON but not an object: " + j.dump().substr(0, 80));

  Header h;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ must be an object of strings, got " + v.dump());
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(path, "__metadata__ entry '" + m.key() + "' must be a string, got " +
                         m.value().dump());
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      fail(path, where + ": expected {\"dtype\", \"shape\", \"data_offsets\"}, got " + v.dump());
    Entry e;
    e.name = name;
    const json& dt = v["dtype"];
    if (!dt.is_string() || !dtype_from_name(dt.get<std::string>(), e.dtype))
      fail(path, where + ": dtype " + (dt.is_string() ? dt.get<std::string>() : dt.dump()) +
                     " is not supported; tensors must be F32, I8 or I32");
    const json& sh = v["shape"];
    if (!sh.is_array()) fail(path, where + ": shape must be an array, got " + sh.dump());
    uint64_t numel = 1;
    for (const json& d : sh) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > kMaxBytes)
        fail(path, where + ": shape " + sh.dump() + " must hold sizes in [0, 2^40]");
      const uint64_t size = d.get<uint64_t>();
      e.shape.push_back(static_cast<int64_t>(size));
      if (size != 0 && numel > kMaxBytes / size)
        fail(path, where + ": shape " + sh.dump() + " is too large");
      numel *= size;
    }
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      fail(path, where + ": data_offsets must be [begin, end], got " + off.dump());
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.end < e.begin) fail(path, where + ": data_offsets " + off.dump() + " end before they begin");
    if (e.end > data_size)
      fail(path, where + ": data_offsets " + offsets_str(e.begin, e.end) +
                     " out of range: the data area holds " + std::to_string(data_size) + " bytes");
    const uint64_t nbytes = numel * dtype_size(e.dtype);
    if (e.end - e.begin != nbytes)
      fail(path, where + ": " + dt.get<std::string>() + " " + shape_str(e.shape) + " needs " +
                     std::to_string(nbytes) + " bytes but data_offsets " +
                     offsets_str(e.begin, e.end) + " span " + std::to_string(e.end - e.begin));
    h.entries.push_back(std::move(e));
  }

  // The tensors must tile the data area: sorted by offset, each starts where the previous ends.
  std::stable_sort(h.entries.begin(), h.entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : h.entries) {
    if (e.begin < pos)
      fail(path, "tensors '" + prev->name + "' " + offsets_str(prev->begin, prev->end) + " and '" +
                     e.name + "' " + offsets_str(e.begin, e.end) + " overlap");
    if (e.begin > pos)
      fail(path, "gap of " + std::to_string(e.begin - pos) + " bytes before tensor '" + e.name +
                     "' " + offsets_str(e.begin, e.end) +
                     (prev ? " (after '" + prev->name + "')" : std::string(" (at the start)")));
    pos = e.end;
    prev = &e;
  }
  if (pos != data_size)
    fail(path, std::to_string(data_size - pos) + " bytes after the last tensor: the data area holds " +
                   std::to_string(data_size) + " bytes, the tensors " + std::to_string(pos));
  return h;
}

// Reads the 8-byte length and the header text; returns the data area's offset and size.
struct Prefix {
  std::string header;
  uint64_t data_offset = 0;
  uint64_t data_size = 0;
};

Prefix read_prefix(const std::string& path, std::ifstream& in) {
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot read (" + ec.message() + ")");
  if (!in) fail(path, std::string("cannot open (") + std::strerror(errno) + ")");
  if (file_size < 8)
    fail(path, "the file holds " + std::to_string(file_size) +
                   " bytes, too few for the 8-byte header length");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  if (!in) fail(path, "cannot read the header length");
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | len_bytes[i];
  if (len > file_size - 8)
    fail(path, "header length " + std::to_string(len) + " is larger than the file (" +
                   std::to_string(file_size) + " bytes, " + std::to_string(file_size - 8) +
                   " after the length)");
  Prefix p;
  p.header.resize(static_cast<std::size_t>(len));
  in.read(p.header.data(), static_cast<std::streamsize>(len));
  if (!in) fail(path, "cannot read the " + std::to_string(len) + "-byte header");
  p.data_offset = 8 + len;
  p.data_size = file_size - p.data_offset;
  return p;
}

}  // namespace

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "F32";
    case DType::Int8: return "I8";
    case DType::Int32: return "I32";
  }
  return "?";
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the order given (plain json would sort the names).
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    EFFML_CHECK(!name.empty() && name != "__metadata__",
                "save_safetensors(" << path << "): invalid tensor name '" << name << "'");
    EFFML_CHECK(t != nullptr, "save_safetensors(" << path << "): tensor '" << name << "' is null");
    EFFML_CHECK(seen.insert(name).second,
                "save_safetensors(" << path << "): duplicate tensor name '" << name << "'");
    nlohmann::ordered_json e;
    e["dtype"] = safetensors_dtype_name(t->dtype());
    e["shape"] = t->shape();
    e["data_offsets"] = {offset, offset + t->nbytes()};
    header[name] = e;
    offset += t->nbytes();
  }
  std::string text = header.dump();
  // Pad so the data area starts 8-byte aligned (8 + header length is a multiple of 8).
  text.append((8 - text.size() % 8) % 8, ' ');

  unsigned char len_bytes[8];
  const uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(len >> (8 * i));
  std::vector<detail::FilePiece> pieces = {{len_bytes, 8}, {text.data(), text.size()}};
  for (const auto& [name, t] : tensors) pieces.push_back({t->raw(), t->nbytes()});
  detail::write_file_atomically(path, pieces);
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const Prefix p = read_prefix(path, in);
  const Header h = parse_header(path, p.header, p.data_size);
  SafetensorsFile file;
  file.metadata = h.metadata;
  // Entries are in offset order and tile the data area, so one sequential pass reads them all.
  for (const Entry& e : h.entries) {
    Tensor t(e.shape, e.dtype);
    if (t.nbytes() > 0) {
      in.read(reinterpret_cast<char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
      if (!in) fail(path, "cannot read tensor '" + e.name + "' (the file changed while read?)");
    }
    file.tensors.emplace_back(e.name, std::move(t));
  }
  return file;
}

std::map<std::string, std::string> read_metadata(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const Prefix p = read_prefix(path, in);
  return parse_header(path, p.header, p.data_size).metadata;
}

bool SafetensorsFile::contains(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return true;
  return false;
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  std::ostringstream os;
  os << "no tensor named '" << name << "'; the file has:";
  for (const auto& [n, t] : tensors) os << " " << n;
  throw Error(os.str());
}

// ---- checkpoints ------------------------------------------------------------------------------

void save_checkpoint(const std::string& path, Module& model,
                     const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, const Tensor*>> tensors;
  for (const NamedParameter& p : model.named_parameters()) tensors.emplace_back(p.name, &p.param->value);
  for (const NamedBuffer& b : model.named_buffers()) tensors.emplace_back(b.name, b.tensor);
  save_safetensors(path, tensors, metadata);
}

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string describe_tensor(const Tensor& t) {
  return std::string(dtype_name(t.dtype())) + " " + t.shape_str();
}
}  // namespace

void load_checkpoint(const std::string& path, Module& model) {
  SafetensorsFile file = load_safetensors(path);
  std::map<std::string, const Tensor*> in_file;
  for (const auto& [name, t] : file.tensors) in_file[name] = &t;

  std::vector<std::pair<std::string, Tensor*>> wanted;
  for (const NamedParameter& p : model.named_parameters()) wanted.emplace_back(p.name, &p.param->value);
  for (const NamedBuffer& b : model.named_buffers()) wanted.emplace_back(b.name, b.tensor);

  std::vector<std::string> missing, mismatched, unexpected;
  std::set<std::string> used;
  for (const auto& [name, t] : wanted) {
    auto it = in_file.find(name);
    if (it == in_file.end()) {
      missing.push_back(name + " " + describe_tensor(*t));
      continue;
    }
    used.insert(name);
    const Tensor& src = *it->second;
    if (src.shape() != t->shape() || src.dtype() != t->dtype())
      mismatched.push_back(name + ": model " + describe_tensor(*t) + ", file " +
                           describe_tensor(src));
  }
  for (const auto& [name, t] : file.tensors) {
    // PyTorch's batch norm counts its updates; this core keeps no such counter.
    if (used.count(name) || name == "num_batches_tracked" ||
        ends_with(name, ".num_batches_tracked"))
      continue;
    unexpected.push_back(name + " " + describe_tensor(t));
  }
  if (!missing.empty() || !mismatched.empty() || !unexpected.empty()) {
    std::ostringstream os;
    os << "checkpoint does not match the model";
    auto list = [&os](const char* what, const std::vector<std::string>& items) {
      if (items.empty()) return;
      os << ". " << what << " (" << items.size() << "):";
      for (std::size_t i = 0; i < items.size(); ++i) os << (i ? "; " : " ") << items[i];
    };
    list("Missing from the file", missing);
    list("Shape or dtype differs", mismatched);
    list("Not in the model", unexpected);
    fail(path, os.str());
  }
  for (const auto& [name, t] : wanted) t->copy_(*in_file.at(name));
}

}  // namespace effml
