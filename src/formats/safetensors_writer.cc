// Safetensors writer: one file, or shards plus model.safetensors.index.json.
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include "formats/byte_writer.h"
#include "formats/safetensors.h"

namespace tinyserve {

Status SafetensorsWriter::Validate(const std::string& name, DType dtype,
                                   const std::vector<int64_t>& shape, size_t num_bytes) const {
  if (name.empty() || name == "__metadata__") {
    return InvalidArgumentError("safetensors tensor name '{}' is reserved or empty", name);
  }
  for (const auto& t : tensors_) {
    if (t.name == name) return InvalidArgumentError("safetensors tensor '{}' added twice", name);
  }
  if (SafetensorsDTypeName(dtype).empty()) {
    return InvalidArgumentError("safetensors tensor '{}': dtype {} cannot be stored", name,
                                DTypeName(dtype));
  }
  uint64_t expected = static_cast<uint64_t>(BlockBytes(dtype));
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(expected, static_cast<uint64_t>(d), &expected)) {
      return InvalidArgumentError("safetensors tensor '{}': invalid shape", name);
    }
  }
  if (expected != num_bytes) {
    return InvalidArgumentError("safetensors tensor '{}': {} bytes given, shape needs {}", name,
                                num_bytes, expected);
  }
  return OkStatus();
}

Status SafetensorsWriter::AddTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                                    std::span<const uint8_t> bytes) {
  TS_RETURN_IF_ERROR(Validate(name, dtype, shape, bytes.size()));
  tensors_.push_back(PendingTensor::Copy(std::move(name), dtype, std::move(shape), bytes));
  return OkStatus();
}

Status SafetensorsWriter::AddTensorRef(std::string name, DType dtype, std::vector<int64_t> shape,
                                       std::span<const uint8_t> bytes) {
  TS_RETURN_IF_ERROR(Validate(name, dtype, shape, bytes.size()));
  tensors_.push_back(PendingTensor::Borrow(std::move(name), dtype, std::move(shape), bytes));
  return OkStatus();
}

void SafetensorsWriter::SetMetadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

std::vector<size_t> SafetensorsWriter::WriteOrder() const {
  // Larger elements first: every size is a multiple of the element size and element sizes are
  // powers of two, so each tensor starts aligned to its element size without padding.
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int64_t ea = BlockBytes(tensors_[a].dtype), eb = BlockBytes(tensors_[b].dtype);
    return ea != eb ? ea > eb : tensors_[a].name < tensors_[b].name;
  });
  return order;
}

Status SafetensorsWriter::WriteFile(const std::string& path, std::span<const size_t> order) const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  std::vector<std::span<const uint8_t>> chunks;
  chunks.reserve(order.size() + 2);
  for (size_t i : order) {
    const PendingTensor& t = tensors_[i];
    const uint64_t size = t.bytes().size();
    header[t.name] = {{"dtype", SafetensorsDTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text = header.dump();
  // The reference writer pads with spaces so the data starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  ByteWriter prefix;
  prefix.Write<uint64_t>(text.size());
  prefix.WriteString(text);
  chunks.insert(chunks.begin(), std::span<const uint8_t>(prefix.bytes()));
  for (size_t i : order) chunks.push_back(tensors_[i].bytes());
  return WriteFileChunks(path, chunks);
}

Status SafetensorsWriter::Write(const std::string& path) const {
  const std::vector<size_t> order = WriteOrder();
  return WriteFile(path, order);
}

Status SafetensorsWriter::WriteSharded(const std::string& dir, uint64_t max_shard_bytes) const {
  const std::vector<size_t> order = WriteOrder();
  // Greedy packing in write order keeps each shard's data aligned.
  std::vector<std::vector<size_t>> shards;
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (size_t i : order) {
    const uint64_t size = tensors_[i].bytes().size();
    if (shards.empty() || (shard_bytes + size > max_shard_bytes && shard_bytes > 0)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += size;
    total_bytes += size;
  }
  if (shards.empty()) shards.emplace_back();
  nlohmann::json weight_map = nlohmann::json::object();
  const std::filesystem::path root(dir);
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name =
        fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
    TS_RETURN_IF_ERROR(WriteFile((root / name).string(), shards[s]));
    for (size_t i : shards[s]) weight_map[tensors_[i].name] = name;
  }
  nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  const std::string text = index.dump(2) + "\n";
  const std::span<const uint8_t> body(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  return WriteFileChunks((root / "model.safetensors.index.json").string(),
                         std::span<const std::span<const uint8_t>>(&body, 1));
}

}  // namespace tinyserve
