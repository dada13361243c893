// GGUF (v2/v3, little-endian) reader and v3 writer. GgufFile maps a file and exposes its
// metadata and zero-copy TensorViews; every count, size and offset is checked before use.
// GgufFile is immutable after Open: safe to read from any thread. GgufWriter: one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "formats/dtype.h"
#include "formats/gguf_value.h"
#include "formats/pending_tensor.h"
#include "formats/tensor_view.h"
#include "util/mmap_file.h"
#include "util/status.h"

namespace tinyserve {

inline constexpr uint64_t kGgufDefaultAlignment = 32;
// ggml's GGML_MAX_DIMS and GGML_MAX_NAME - 1 (names must fit ggml's 64-byte buffer).
inline constexpr uint32_t kGgufMaxDims = 4;
inline constexpr size_t kGgufMaxTensorNameBytes = 63;

class GgufFile {
 public:
  // Maps `path` and validates the whole header and every tensor info. Errors name the file and
  // the offending key or tensor: InvalidArgument for malformed content, Unimplemented for
  // unsupported versions or types, NotFound / others from the OS when the file cannot be read.
  [[nodiscard]] static StatusOr<GgufFile> Open(const std::string& path);

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  // File offset where the tensor data section starts.
  uint64_t data_offset() const { return data_offset_; }

  // nullptr if absent.
  const GgufValue* Find(std::string_view key) const;
  // nullopt if absent or of another type.
  std::optional<std::string> GetString(std::string_view key) const;
  // Any integer type (or a float holding an exact non-negative integer).
  std::optional<uint64_t> GetUint(std::string_view key) const;
  // Any numeric type.
  std::optional<double> GetFloat(std::string_view key) const;
  std::optional<bool> GetBool(std::string_view key) const;

  // In file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  // In file order; shapes outermost-first (GGUF's ne[] reversed); data points into the map.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr if absent.
  const TensorView* FindTensor(std::string_view name) const;
  const std::string& path() const { return file_.path(); }

 private:
  friend class GgufParser;
  GgufFile() = default;

  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::unordered_map<std::string, size_t> metadata_index_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// Builds a GGUF v3 file: metadata in insertion order, then tensor infos and data in the order
// tensors were added, each tensor aligned to general.alignment (default 32).
class GgufWriter {
 public:
  // Adds or replaces (keeping its position) a metadata entry.
  void Set(std::string key, GgufValue value);
  void SetString(std::string key, std::string value) {
    Set(std::move(key), GgufValue::String(std::move(value)));
  }
  void SetUint32(std::string key, uint32_t value) { Set(std::move(key), GgufValue::Uint32(value)); }
  void SetInt32(std::string key, int32_t value) { Set(std::move(key), GgufValue::Int32(value)); }
  void SetUint64(std::string key, uint64_t value) { Set(std::move(key), GgufValue::Uint64(value)); }
  void SetFloat32(std::string key, float value) { Set(std::move(key), GgufValue::Float32(value)); }
  void SetBool(std::string key, bool value) { Set(std::move(key), GgufValue::Bool(value)); }
  void SetStringArray(std::string key, std::vector<std::string> value) {
    Set(std::move(key), GgufValue::StringArray(std::move(value)));
  }
  void SetInt32Array(std::string key, std::span<const int32_t> value) {
    Set(std::move(key), GgufValue::Int32Array(value));
  }
  void SetFloat32Array(std::string key, std::span<const float> value) {
    Set(std::move(key), GgufValue::Float32Array(value));
  }

  // Copies `bytes`. `shape` is outermost-first (written reversed as ne0..); 1..4 dims, each > 0;
  // bytes.size() must equal RowBytes(dtype, shape.back()) * rows. Names are unique, <= 63 bytes.
  [[nodiscard]] Status AddTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                                 std::span<const uint8_t> bytes);
  // As AddTensor, but only references `bytes`: the caller keeps them alive until Write returns.
  // For large weights (dummy models) that should not be copied.
  [[nodiscard]] Status AddTensorRef(std::string name, DType dtype, std::vector<int64_t> shape,
                                    std::span<const uint8_t> bytes);

  // Writes the file. Fails if general.alignment is set but is not a uint32 power of two.
  [[nodiscard]] Status Write(const std::string& path) const;

 private:
  [[nodiscard]] Status Validate(const std::string& name, DType dtype,
                                const std::vector<int64_t>& shape, size_t num_bytes) const;

  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace tinyserve
