/// \file safetensors.h
/// \brief Tensors and model checkpoints in the safetensors format (Hugging Face), readable by
/// PyTorch.
///
/// Layout of a file:
///
/// | bytes            | content                                                              |
/// |------------------|----------------------------------------------------------------------|
/// | 8                | \f$ H \f$, the header length, unsigned 64-bit little-endian           |
/// | \f$ H \f$        | a JSON object, padded with spaces so that \f$ 8 + H \f$ is a multiple of 8 |
/// | the rest         | the data area: each tensor's raw little-endian bytes, row-major      |
///
/// The JSON maps each tensor name to `{"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}`
/// where \f$ [b, e) \f$ is its byte range within the data area; an optional `"__metadata__"`
/// entry maps strings to strings. Tensors follow each other in the data area without gaps, and
/// \f$ e - b \f$ equals numel times the element size. Supported dtypes: "F32", "I8", "I32".
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "effml/module.h"
#include "effml/tensor.h"

namespace effml {

/// The safetensors name of a dtype: "F32", "I8" or "I32".
const char* safetensors_dtype_name(DType dtype);

/// Writes tensors (in the given order) and string metadata to a safetensors file.
///
/// The file is written to `path + ".tmp"` and then renamed to `path`, so a crash never leaves a
/// half-written file under the real name. Names must be non-empty, unique and not
/// "__metadata__".
/// \throws effml::Error naming the file when it cannot be written, or the offending name
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// The contents of a safetensors file: its tensors in data-area order, and its metadata.
struct SafetensorsFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  ///< (name, tensor), in file order
  std::map<std::string, std::string> metadata;          ///< the "__metadata__" map (may be empty)

  /// The tensor with this name; throws naming the names the file has.
  const Tensor& at(const std::string& name) const;
  /// True when the file has a tensor with this name.
  bool contains(const std::string& name) const;
};

/// Reads and validates a whole safetensors file.
///
/// Strict: the header length must fit in the file, the header must be a JSON object whose
/// entries each have a supported dtype, a shape of non-negative sizes and data offsets; the
/// offsets must lie inside the data area, match numel times the element size, and tile the data
/// area exactly (no overlap, no gap, nothing after the last tensor).
/// \throws effml::Error naming the file and the problem (e.g. "tensor 'w': dtype F16 is not
///         supported; tensors must be F32, I8 or I32")
SafetensorsFile load_safetensors(const std::string& path);

/// Only the "__metadata__" map of a safetensors file (the data area is not read).
/// \throws effml::Error as load_safetensors for a bad header
std::map<std::string, std::string> read_metadata(const std::string& path);

/// Saves a model as PyTorch's `state_dict` would: every value of `named_parameters()`, then every
/// `named_buffers()` tensor, with their dotted names ("0.weight", "features.1.running_mean").
void save_checkpoint(const std::string& path, Module& model,
                     const std::map<std::string, std::string>& metadata = {});

/// Loads a checkpoint into a model: every parameter and buffer of the model must be in the file
/// with the same shape and dtype, and the file may hold nothing else, except
/// `*.num_batches_tracked` entries (which PyTorch writes for batch norm) that are ignored.
/// Nothing is changed unless everything matches.
/// \throws effml::Error listing every missing, mismatched (with both shapes) and unexpected
///         tensor
void load_checkpoint(const std::string& path, Module& model);

}  // namespace effml
