// Safetensors parsing: header length, JSON header, per-tensor checks; sharded model directories.
#include <algorithm>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>

#include "formats/byte_reader.h"
#include "formats/safetensors.h"

namespace tinyserve {
namespace {

using nlohmann::json;

// The header nests at most {tensor: {shape: [...]}}; deeper JSON is rejected before parsing so
// the parser never recurses on hostile input.
constexpr int kMaxJsonDepth = 4;
// Safetensors has no dimension limit; real tensors have at most a handful.
constexpr size_t kMaxDims = 8;

constexpr struct {
  std::string_view name;
  DType dtype;
} kDTypes[] = {{"F64", DType::kF64},   {"F32", DType::kF32}, {"F16", DType::kF16},
               {"BF16", DType::kBF16}, {"I64", DType::kI64}, {"I32", DType::kI32},
               {"I16", DType::kI16},   {"I8", DType::kI8}};
// Valid safetensors dtypes that tinyserve does not load.
constexpr std::string_view kUnsupportedDTypes[] = {"BOOL", "U8",      "U16",     "U32",
                                                   "U64",  "F8_E4M3", "F8_E5M2", "F8_E8M0",
                                                   "F4",   "F6_E2M3", "F6_E3M2", "C64"};

// Deepest nesting of arrays and objects in `text`, ignoring brackets inside strings.
int JsonDepth(std::string_view text) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

// Parses `text` as JSON; on failure returns a discarded value. Sets *duplicate to the first key
// that appears twice in one object (nlohmann would silently keep the last).
json ParseJsonNoDuplicates(std::string_view text, std::string* duplicate) {
  std::vector<std::unordered_set<std::string>> open_objects;
  json::parser_callback_t cb = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty() && parsed.is_string()) {
      if (!open_objects.back().insert(parsed.get_ref<const std::string&>()).second &&
          duplicate->empty()) {
        *duplicate = parsed.get_ref<const std::string&>();
      }
    }
    return true;
  };
  return json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false);
}

std::optional<uint64_t> JsonUint(const json& j) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() >= 0)
    return static_cast<uint64_t>(j.get<int64_t>());
  return std::nullopt;
}

}  // namespace

std::string_view SafetensorsDTypeName(DType t) {
  for (const auto& d : kDTypes)
    if (d.dtype == t) return d.name;
  return {};
}

class SafetensorsParser {
 public:
  explicit SafetensorsParser(MappedFile file) { out_.file_ = std::move(file); }

  StatusOr<SafetensorsFile> Parse() {
    const std::span<const uint8_t> bytes = out_.file_.bytes();
    ByteReader reader(bytes);
    uint64_t header_len = 0;
    if (!reader.Read(&header_len)) {
      return Error("truncated file: {} bytes, too short for the header length", bytes.size());
    }
    if (header_len > reader.remaining()) {
      return Error("header length {} runs past the end of the file ({} bytes)", header_len,
                   bytes.size());
    }
    if (header_len > kSafetensorsMaxHeaderBytes) {
      return Error("header length {} exceeds the limit {}", header_len, kSafetensorsMaxHeaderBytes);
    }
    std::string_view text;
    if (!reader.ReadString(header_len, &text)) return Error("truncated header");
    data_start_ = reader.pos();
    data_size_ = reader.remaining();
    if (JsonDepth(text) > kMaxJsonDepth) {
      return Error("header JSON nests deeper than {} levels", kMaxJsonDepth);
    }
    std::string duplicate;
    const json header = ParseJsonNoDuplicates(text, &duplicate);
    if (header.is_discarded()) return Error("header is not valid JSON");
    if (!duplicate.empty()) return Error("duplicate key '{}' in header", duplicate);
    if (!header.is_object()) return Error("header JSON is not an object");

    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        TS_RETURN_IF_ERROR(ParseMetadata(entry));
        continue;
      }
      TS_RETURN_IF_ERROR(ParseTensor(name, entry));
    }
    TS_RETURN_IF_ERROR(CheckOverlap());
    for (size_t i = 0; i < out_.tensors_.size(); ++i) {
      out_.tensor_index_.emplace(out_.tensors_[i].name, i);
    }
    return std::move(out_);
  }

 private:
  template <typename... Args>
  Status Error(fmt::format_string<Args...> f, Args&&... args) const {
    return InvalidArgumentError("{}: {}", out_.path(), fmt::format(f, std::forward<Args>(args)...));
  }

  Status ParseMetadata(const json& entry) {
    if (!entry.is_object()) return Error("__metadata__ is not an object");
    for (const auto& [key, value] : entry.items()) {
      if (!value.is_string()) return Error("__metadata__ key '{}' is not a string", key);
      out_.metadata_[key] = value.get<std::string>();
    }
    return OkStatus();
  }

  Status ParseTensor(const std::string& name, const json& entry) {
    if (name.empty()) return Error("empty tensor name");
    if (!entry.is_object()) return Error("tensor '{}': entry is not an object", name);
    const auto dtype_it = entry.find("dtype");
    const auto shape_it = entry.find("shape");
    const auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
      return Error("tensor '{}': missing or non-string dtype", name);
    }
    if (shape_it == entry.end() || !shape_it->is_array()) {
      return Error("tensor '{}': missing or non-array shape", name);
    }
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
      return Error("tensor '{}': data_offsets must be an array [begin, end]", name);
    }
    TensorView t;
    t.name = name;
    const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
    TS_RETURN_IF_ERROR(ParseDType(name, dtype_name, &t.dtype));
    if (shape_it->size() > kMaxDims) {
      return Error("tensor '{}': {} dimensions (at most {})", name, shape_it->size(), kMaxDims);
    }
    const uint64_t element_bytes = static_cast<uint64_t>(BlockBytes(t.dtype));
    uint64_t expected = element_bytes;
    for (const json& dim : *shape_it) {
      const std::optional<uint64_t> d = JsonUint(dim);
      if (!d || *d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error("tensor '{}': shape entry {} is not a non-negative integer", name, dim.dump());
      }
      if (__builtin_mul_overflow(expected, *d, &expected) ||
          expected > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error("tensor '{}': shape {} overflows", name, shape_it->dump());
      }
      t.shape.push_back(static_cast<int64_t>(*d));
    }
    const std::optional<uint64_t> begin = JsonUint((*offsets_it)[0]);
    const std::optional<uint64_t> end = JsonUint((*offsets_it)[1]);
    if (!begin || !end || *begin > *end) {
      return Error("tensor '{}': invalid data_offsets {}", name, offsets_it->dump());
    }
    if (*end > data_size_) {
      return Error("tensor '{}': data_offsets {} run past the end of the data ({} bytes)", name,
                   offsets_it->dump(), data_size_);
    }
    if (*end - *begin != expected) {
      return Error("tensor '{}': shape {} of {} needs {} bytes but data_offsets {} span {}", name,
                   shape_it->dump(), dtype_name, expected, offsets_it->dump(), *end - *begin);
    }
    if ((data_start_ + *begin) % element_bytes != 0) {
      return Error("tensor '{}': data at file offset {} is not aligned to its {}-byte elements",
                   name, data_start_ + *begin, element_bytes);
    }
    t.data = out_.file_.data() + data_start_ + *begin;
    t.num_bytes = expected;
    out_.tensors_.push_back(std::move(t));
    begins_.push_back(*begin);
    return OkStatus();
  }

  Status ParseDType(const std::string& name, const std::string& dtype_name, DType* out) {
    for (const auto& d : kDTypes) {
      if (d.name == dtype_name) {
        *out = d.dtype;
        return OkStatus();
      }
    }
    for (std::string_view u : kUnsupportedDTypes) {
      if (u == dtype_name) {
        return UnimplementedError("{}: tensor '{}': dtype {} is not supported", out_.path(), name,
                                  dtype_name);
      }
    }
    return Error("tensor '{}': unknown dtype '{}'", name, dtype_name);
  }

  // Sorts tensors by data offset and rejects any two non-empty ones sharing bytes.
  Status CheckOverlap() {
    std::vector<size_t> order(out_.tensors_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return begins_[a] != begins_[b] ? begins_[a] < begins_[b]
                                      : out_.tensors_[a].name < out_.tensors_[b].name;
    });
    std::vector<TensorView> sorted;
    sorted.reserve(order.size());
    uint64_t covered_end = 0;
    const TensorView* last = nullptr;
    for (size_t i : order) {
      const TensorView& t = out_.tensors_[i];
      if (t.num_bytes != 0) {
        if (last != nullptr && begins_[i] < covered_end) {
          return Error("tensor '{}' overlaps tensor '{}'", t.name, last->name);
        }
        covered_end = begins_[i] + t.num_bytes;
        last = &t;
      }
    }
    for (size_t i : order) sorted.push_back(std::move(out_.tensors_[i]));
    out_.tensors_ = std::move(sorted);
    return OkStatus();
  }

  SafetensorsFile out_;
  uint64_t data_start_ = 0;
  uint64_t data_size_ = 0;
  std::vector<uint64_t> begins_;  // data offset of each tensor in out_.tensors_
};

StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  TS_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  return SafetensorsParser(std::move(file)).Parse();
}

const TensorView* SafetensorsFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

// Shard names come from a file: only plain names inside the model directory are accepted.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\\\0", 3)) == std::string::npos;
}

bool IsRegularFile(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

}  // namespace

StatusOr<SafetensorsModel> SafetensorsModel::OpenDir(const std::string& dir) {
  const std::filesystem::path root(dir);
  const std::filesystem::path index_path = root / "model.safetensors.index.json";
  SafetensorsModel model;
  // Shard file -> tensors the index assigns to it.
  std::map<std::string, std::vector<std::string>> listed;
  if (IsRegularFile(index_path)) {
    TS_ASSIGN_OR_RETURN(MappedFile index_file, MappedFile::Open(index_path.string()));
    const std::string_view text(reinterpret_cast<const char*>(index_file.data()),
                                index_file.size());
    if (text.size() > kSafetensorsMaxHeaderBytes || JsonDepth(text) > kMaxJsonDepth) {
      return InvalidArgumentError("{}: index too large or too deeply nested", index_path.string());
    }
    std::string duplicate;
    const json index = ParseJsonNoDuplicates(text, &duplicate);
    if (index.is_discarded() || !index.is_object()) {
      return InvalidArgumentError("{}: not a JSON object", index_path.string());
    }
    if (!duplicate.empty()) {
      return InvalidArgumentError("{}: duplicate key '{}'", index_path.string(), duplicate);
    }
    const auto map_it = index.find("weight_map");
    if (map_it == index.end() || !map_it->is_object()) {
      return InvalidArgumentError("{}: missing \"weight_map\" object", index_path.string());
    }
    for (const auto& [tensor, shard] : map_it->items()) {
      if (!shard.is_string() || !IsPlainFileName(shard.get<std::string>())) {
        return InvalidArgumentError("{}: tensor '{}': shard {} is not a plain file name",
                                    index_path.string(), tensor, shard.dump());
      }
      listed[shard.get<std::string>()].push_back(tensor);
    }
    if (listed.empty()) return InvalidArgumentError("{}: empty weight_map", index_path.string());
  } else if (IsRegularFile(root / "model.safetensors")) {
    listed["model.safetensors"];
  } else {
    return NotFoundError("{}: no model.safetensors or model.safetensors.index.json", dir);
  }

  for (const auto& [shard_name, names] : listed) {
    TS_ASSIGN_OR_RETURN(SafetensorsFile shard, SafetensorsFile::Open((root / shard_name).string()));
    for (const std::string& name : names) {
      if (shard.FindTensor(name) == nullptr) {
        return InvalidArgumentError("{}: tensor '{}' listed in the index is missing", shard.path(),
                                    name);
      }
    }
    model.shards_.push_back(std::move(shard));
  }
  for (const SafetensorsFile& shard : model.shards_) {
    for (const TensorView& t : shard.tensors()) {
      if (!model.index_.emplace(t.name, &t).second) {
        return InvalidArgumentError("{}: tensor '{}' also appears in another shard", shard.path(),
                                    t.name);
      }
    }
  }
  return model;
}

const TensorView* SafetensorsModel::FindTensor(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : it->second;
}

std::vector<const TensorView*> SafetensorsModel::tensors() const {
  std::vector<const TensorView*> out;
  for (const SafetensorsFile& shard : shards_)
    for (const TensorView& t : shard.tensors()) out.push_back(&t);
  return out;
}

}  // namespace tinyserve
