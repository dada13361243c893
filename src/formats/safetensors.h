// Safetensors reader (one file or a sharded model directory) and writer. Readers map files and
// expose zero-copy TensorViews; every header field is checked before use. Readers are immutable
// after Open: safe to read from any thread. SafetensorsWriter: one thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "formats/dtype.h"
#include "formats/pending_tensor.h"
#include "formats/tensor_view.h"
#include "util/mmap_file.h"
#include "util/status.h"

namespace tinyserve {

// Header JSON larger than this is rejected (the reference implementation uses 100 MB).
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100ull << 20;
// The dtype name used in safetensors headers ("F32", "BF16", ...); empty for types safetensors
// cannot hold (block-quantized types).
std::string_view SafetensorsDTypeName(DType t);

class SafetensorsFile {
 public:
  // Maps `path` and validates the header: JSON object, dtypes (F64 F32 F16 BF16 I64 I32 I16 I8;
  // others rejected), shapes consistent with data_offsets, offsets inside the file, no overlap,
  // data aligned to the element size. Errors name the file and the tensor.
  [[nodiscard]] static StatusOr<SafetensorsFile> Open(const std::string& path);

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // Ordered by data offset; shapes as stored (outermost first).
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr if absent.
  const TensorView* FindTensor(std::string_view name) const;
  // The "__metadata__" string map (empty if absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return file_.path(); }

 private:
  friend class SafetensorsParser;
  SafetensorsFile() = default;

  MappedFile file_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  std::map<std::string, std::string> metadata_;
};

// A model directory: `model.safetensors.index.json` (its "weight_map" names the shards, plain
// file names inside `dir`) or else a single `model.safetensors`.
class SafetensorsModel {
 public:
  // Errors: NotFound if neither file exists; InvalidArgument for a malformed index, a shard
  // name that is not a plain file name, a tensor the index lists but its shard lacks, or a
  // tensor name present in two shards.
  [[nodiscard]] static StatusOr<SafetensorsModel> OpenDir(const std::string& dir);

  SafetensorsModel(SafetensorsModel&&) noexcept = default;
  SafetensorsModel& operator=(SafetensorsModel&&) noexcept = default;

  // nullptr if absent.
  const TensorView* FindTensor(std::string_view name) const;
  // Every tensor of every shard: shards in name order, tensors in each shard's order.
  std::vector<const TensorView*> tensors() const;
  const std::vector<SafetensorsFile>& shards() const { return shards_; }

 private:
  SafetensorsModel() = default;

  std::vector<SafetensorsFile> shards_;
  std::unordered_map<std::string, const TensorView*> index_;
};

// Writes tensors in the reference layout: 8-byte little-endian header length, JSON header
// padded with spaces to a multiple of 8, then data ordered by element size (largest first) and
// name, contiguous, so every tensor is aligned to its element size.
class SafetensorsWriter {
 public:
  // Copies `bytes`. Plain dtypes only (F64 F32 F16 BF16 I64 I32 I16 I8); shape dims >= 0;
  // bytes.size() == elements * element size; names unique and not "__metadata__".
  [[nodiscard]] Status AddTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                                 std::span<const uint8_t> bytes);
  // As AddTensor, but only references `bytes` until Write/WriteSharded returns.
  [[nodiscard]] Status AddTensorRef(std::string name, DType dtype, std::vector<int64_t> shape,
                                    std::span<const uint8_t> bytes);
  // Adds or replaces an entry of "__metadata__".
  void SetMetadata(std::string key, std::string value);

  [[nodiscard]] Status Write(const std::string& path) const;
  // Writes shards `model-0000i-of-0000n.safetensors` of at most `max_shard_bytes` of tensor data
  // each (a larger tensor gets a shard of its own) plus `model.safetensors.index.json` into
  // `dir` (which must exist).
  [[nodiscard]] Status WriteSharded(const std::string& dir, uint64_t max_shard_bytes) const;

 private:
  [[nodiscard]] Status Validate(const std::string& name, DType dtype,
                                const std::vector<int64_t>& shape, size_t num_bytes) const;
  // Tensor indices in the order their data is written.
  std::vector<size_t> WriteOrder() const;
  [[nodiscard]] Status WriteFile(const std::string& path, std::span<const size_t> order) const;

  std::vector<PendingTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace tinyserve
