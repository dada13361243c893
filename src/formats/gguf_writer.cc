// GGUF v3 writer: serialises metadata and tensor infos, then aligned tensor data.
#include <unordered_set>

#include "formats/byte_writer.h"
#include "formats/gguf.h"

namespace tinyserve {
namespace {

void WriteGgufString(ByteWriter& w, std::string_view s) {
  w.Write<uint64_t>(s.size());
  w.WriteString(s);
}

void WriteValue(ByteWriter& w, const GgufValue& v) {
  switch (v.type()) {
    case GgufType::kUint8:
      w.Write(static_cast<uint8_t>(*v.AsU64()));
      return;
    case GgufType::kInt8:
      w.Write(static_cast<int8_t>(*v.AsI64()));
      return;
    case GgufType::kUint16:
      w.Write(static_cast<uint16_t>(*v.AsU64()));
      return;
    case GgufType::kInt16:
      w.Write(static_cast<int16_t>(*v.AsI64()));
      return;
    case GgufType::kUint32:
      w.Write(static_cast<uint32_t>(*v.AsU64()));
      return;
    case GgufType::kInt32:
      w.Write(static_cast<int32_t>(*v.AsI64()));
      return;
    case GgufType::kUint64:
      w.Write(*v.AsU64());
      return;
    case GgufType::kInt64:
      w.Write(*v.AsI64());
      return;
    case GgufType::kFloat32:
      w.Write(static_cast<float>(*v.AsF64()));
      return;
    case GgufType::kFloat64:
      w.Write(*v.AsF64());
      return;
    case GgufType::kBool:
      w.Write<uint8_t>(*v.AsBool() ? 1 : 0);
      return;
    case GgufType::kString:
      WriteGgufString(w, v.string_value());
      return;
    case GgufType::kArray:
      w.Write(static_cast<uint32_t>(v.element_type()));
      w.Write<uint64_t>(v.size());
      if (v.element_type() == GgufType::kString) {
        for (const auto& s : v.strings()) WriteGgufString(w, s);
      } else {
        for (const auto& e : v.elements()) WriteValue(w, e);
      }
      return;
  }
}

}  // namespace

void GgufWriter::Set(std::string key, GgufValue value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

Status GgufWriter::Validate(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                            size_t num_bytes) const {
  if (name.empty() || name.size() > kGgufMaxTensorNameBytes) {
    return InvalidArgumentError("GGUF tensor name '{}' must have 1..{} bytes", name,
                                kGgufMaxTensorNameBytes);
  }
  for (const auto& t : tensors_) {
    if (t.name == name) return InvalidArgumentError("GGUF tensor '{}' added twice", name);
  }
  if (BlockSize(dtype) == 0) {
    return InvalidArgumentError("GGUF tensor '{}': unknown dtype", name);
  }
  if (shape.empty() || shape.size() > kGgufMaxDims) {
    return InvalidArgumentError("GGUF tensor '{}': {} dimensions (must be 1..{})", name,
                                shape.size(), kGgufMaxDims);
  }
  uint64_t rows = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] <= 0) {
      return InvalidArgumentError("GGUF tensor '{}': dimension {} is {}", name, d, shape[d]);
    }
    if (d + 1 < shape.size() &&
        __builtin_mul_overflow(rows, static_cast<uint64_t>(shape[d]), &rows)) {
      return InvalidArgumentError("GGUF tensor '{}': size overflows", name);
    }
  }
  const std::optional<uint64_t> row_bytes = RowBytes(dtype, shape.back());
  uint64_t expected = 0;
  if (!row_bytes) {
    return InvalidArgumentError(
        "GGUF tensor '{}': row length {} is not a multiple of the {} "
        "block size {}",
        name, shape.back(), DTypeName(dtype), BlockSize(dtype));
  }
  if (__builtin_mul_overflow(*row_bytes, rows, &expected) || expected != num_bytes) {
    return InvalidArgumentError("GGUF tensor '{}': {} bytes given, shape needs {}", name, num_bytes,
                                expected);
  }
  return OkStatus();
}

Status GgufWriter::AddTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                             std::span<const uint8_t> bytes) {
  TS_RETURN_IF_ERROR(Validate(name, dtype, shape, bytes.size()));
  tensors_.push_back(PendingTensor::Copy(std::move(name), dtype, std::move(shape), bytes));
  return OkStatus();
}

Status GgufWriter::AddTensorRef(std::string name, DType dtype, std::vector<int64_t> shape,
                                std::span<const uint8_t> bytes) {
  TS_RETURN_IF_ERROR(Validate(name, dtype, shape, bytes.size()));
  tensors_.push_back(PendingTensor::Borrow(std::move(name), dtype, std::move(shape), bytes));
  return OkStatus();
}

Status GgufWriter::Write(const std::string& path) const {
  uint64_t alignment = kGgufDefaultAlignment;
  for (const auto& [key, value] : metadata_) {
    if (key != "general.alignment") continue;
    const std::optional<uint64_t> a = value.AsU64();
    if (value.type() != GgufType::kUint32 || !a || *a == 0 || *a % 8 != 0 || (*a & (*a - 1)) != 0) {
      return InvalidArgumentError(
          "{}: general.alignment must be a uint32 power of two "
          "multiple of 8",
          path);
    }
    alignment = *a;
  }

  ByteWriter header;
  header.WriteString("GGUF");
  header.Write<uint32_t>(3);
  header.Write<uint64_t>(tensors_.size());
  header.Write<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    WriteGgufString(header, key);
    header.Write(static_cast<uint32_t>(value.type()));
    WriteValue(header, value);
  }
  uint64_t offset = 0;
  std::vector<uint64_t> padding(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const PendingTensor& t = tensors_[i];
    WriteGgufString(header, t.name);
    header.Write<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) {
      header.Write<uint64_t>(static_cast<uint64_t>(*it));
    }
    header.Write(static_cast<uint32_t>(t.dtype));
    header.Write<uint64_t>(offset);
    const uint64_t size = t.bytes().size();
    padding[i] = (alignment - size % alignment) % alignment;
    offset += size + padding[i];
  }
  header.PadTo(alignment);

  const std::vector<uint8_t> zeros(alignment, 0);
  std::vector<std::span<const uint8_t>> chunks;
  chunks.reserve(1 + 2 * tensors_.size());
  chunks.emplace_back(header.bytes());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    chunks.push_back(tensors_[i].bytes());
    chunks.emplace_back(zeros.data(), padding[i]);
  }
  return WriteFileChunks(path, chunks);
}

}  // namespace tinyserve
