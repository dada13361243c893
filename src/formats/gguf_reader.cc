// GGUF parsing: header, metadata, tensor infos and the checks that make the views safe.
#include <algorithm>
#include <numeric>

#include "formats/byte_reader.h"
#include "formats/gguf.h"

namespace tinyserve {
namespace {

constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
// Nested arrays deeper than this are rejected (no real file nests more than twice).
constexpr int kMaxArrayDepth = 8;
// All metadata array elements together; bounds memory on files full of tiny elements (the
// largest real vocabularies have ~260k tokens).
constexpr uint64_t kMaxMetadataElements = 16ull << 20;
// Memory of the parsed metadata (values, strings, keys and their index), however the file
// spends its bytes: a uint8 array element takes 1 byte in a file and a GgufValue (~48 bytes)
// parsed, so element counts alone would let a 16 MiB file take ~800 MiB. Real files need far
// less (a 150k-token vocabulary with its merges, scores and types: ~30 MiB).
constexpr uint64_t kMaxMetadataMemory = 256ull << 20;
// Heap bytes of one std::string holding `len` bytes (its buffer when past the inline capacity).
uint64_t StringMemory(uint64_t len) { return sizeof(std::string) + (len > 15 ? len + 1 : 0); }
// Largest up-front reservation for an array read from a file.
constexpr uint64_t kReserveLimit = 1ull << 16;
// Keys are at most 2^16-1 bytes (GGUF spec).
constexpr uint64_t kMaxKeyBytes = 65535;
// general.alignment must be a power of two multiple of 8; anything larger is nonsense.
constexpr uint64_t kMaxAlignment = 1ull << 24;

// Bytes that one element of `t` occupies at least, used to bound array counts.
uint64_t MinElementBytes(GgufType t) {
  if (t == GgufType::kString) return 8;     // length
  if (t == GgufType::kArray) return 4 + 8;  // element type + count
  return GgufScalarBytes(t);
}

}  // namespace

// Reads one file; all error messages start with the file's path.
class GgufParser {
 public:
  explicit GgufParser(MappedFile file) : reader_(file.bytes()) { out_.file_ = std::move(file); }

  StatusOr<GgufFile> Parse() {
    TS_RETURN_IF_ERROR(ParseHeader());
    TS_RETURN_IF_ERROR(ParseMetadata());
    TS_RETURN_IF_ERROR(ParseAlignment());
    TS_RETURN_IF_ERROR(ParseTensorInfos());
    TS_RETURN_IF_ERROR(CheckTensorData());
    return std::move(out_);
  }

 private:
  template <typename... Args>
  Status Error(fmt::format_string<Args...> f, Args&&... args) const {
    return InvalidArgumentError("{}: {}", out_.path(), fmt::format(f, std::forward<Args>(args)...));
  }
  Status Truncated(std::string_view what) const {
    return Error("truncated file: {} at offset {} runs past the end ({} bytes)", what,
                 reader_.pos(), reader_.size());
  }

  Status ParseHeader() {
    std::span<const uint8_t> magic;
    if (!reader_.ReadBytes(4, &magic)) return Truncated("GGUF magic");
    if (!std::equal(magic.begin(), magic.end(), kMagic)) {
      return Error("bad magic: not a GGUF file");
    }
    uint32_t version = 0;
    if (!reader_.Read(&version)) return Truncated("version");
    if (version == 1) {
      return UnimplementedError("{}: GGUF version 1 is not supported (only versions 2 and 3)",
                                out_.path());
    }
    if (version != 2 && version != 3) {
      if ((version & 0xFFFFu) == 0 && (version >> 16) != 0) {
        return UnimplementedError("{}: big-endian GGUF files are not supported", out_.path());
      }
      return UnimplementedError("{}: unsupported GGUF version {} (only versions 2 and 3)",
                                out_.path(), version);
    }
    out_.version_ = version;
    if (!reader_.Read(&num_tensors_)) return Truncated("tensor count");
    if (!reader_.Read(&num_kv_)) return Truncated("metadata count");
    // A tensor info takes at least 24 bytes, a key-value pair at least 13: counts beyond what
    // the rest of the file could hold are corrupt (and must not size any allocation).
    if (num_tensors_ > reader_.remaining() / 24) {
      return Error("tensor count {} exceeds what the {} remaining bytes can hold", num_tensors_,
                   reader_.remaining());
    }
    if (num_kv_ > reader_.remaining() / 13) {
      return Error("metadata count {} exceeds what the {} remaining bytes can hold", num_kv_,
                   reader_.remaining());
    }
    return OkStatus();
  }

  // Counts `bytes` of parsed metadata against kMaxMetadataMemory before they are allocated.
  Status Charge(std::string_view key, uint64_t bytes) {
    metadata_memory_ += bytes;
    if (metadata_memory_ > kMaxMetadataMemory) {
      return Error("metadata key '{}': the metadata would take more than {} MiB of memory parsed",
                   key, kMaxMetadataMemory >> 20);
    }
    return OkStatus();
  }

  // `what` names the string in errors; `index` >= 0 marks element `index` of that array.
  Status ReadString(std::string_view what, uint64_t max_len, std::string* out, int64_t index = -1) {
    auto name = [&] { return index < 0 ? std::string(what) : fmt::format("{}[{}]", what, index); };
    uint64_t len = 0;
    if (!reader_.Read(&len)) return Truncated(fmt::format("length of {}", name()));
    if (len > reader_.remaining()) {
      return Error("{}: string length {} exceeds the {} bytes left in the file", name(), len,
                   reader_.remaining());
    }
    if (len > max_len) {
      return Error("{}: string length {} exceeds the limit {}", name(), len, max_len);
    }
    std::string_view s;
    if (!reader_.ReadString(len, &s)) return Truncated(name());
    out->assign(s);
    return OkStatus();
  }

  Status ReadType(std::string_view key, GgufType* out) {
    uint32_t id = 0;
    if (!reader_.Read(&id)) return Truncated(fmt::format("value type of '{}'", key));
    if (!IsValidGgufType(id)) return Error("metadata key '{}': unknown value type {}", key, id);
    *out = static_cast<GgufType>(id);
    return OkStatus();
  }

  template <typename T>
  Status ReadScalar(std::string_view key, T* v) {
    if (!reader_.Read(v)) return Truncated(fmt::format("value of '{}'", key));
    return OkStatus();
  }

  Status ReadValue(std::string_view key, GgufType type, int depth, GgufValue* out) {
    switch (type) {
#define TS_GGUF_CASE(Tag, CType, Make)       \
  case GgufType::Tag: {                      \
    CType v{};                               \
    TS_RETURN_IF_ERROR(ReadScalar(key, &v)); \
    *out = GgufValue::Make(v);               \
    return OkStatus();                       \
  }
      TS_GGUF_CASE(kUint8, uint8_t, Uint8)
      TS_GGUF_CASE(kInt8, int8_t, Int8)
      TS_GGUF_CASE(kUint16, uint16_t, Uint16)
      TS_GGUF_CASE(kInt16, int16_t, Int16)
      TS_GGUF_CASE(kUint32, uint32_t, Uint32)
      TS_GGUF_CASE(kInt32, int32_t, Int32)
      TS_GGUF_CASE(kUint64, uint64_t, Uint64)
      TS_GGUF_CASE(kInt64, int64_t, Int64)
      TS_GGUF_CASE(kFloat32, float, Float32)
      TS_GGUF_CASE(kFloat64, double, Float64)
#undef TS_GGUF_CASE
      case GgufType::kBool: {
        uint8_t b = 0;
        TS_RETURN_IF_ERROR(ReadScalar(key, &b));
        if (b > 1) return Error("metadata key '{}': invalid bool byte {}", key, b);
        *out = GgufValue::Bool(b != 0);
        return OkStatus();
      }
      case GgufType::kString: {
        std::string s;
        TS_RETURN_IF_ERROR(ReadString(fmt::format("value of '{}'", key), UINT64_MAX, &s));
        TS_RETURN_IF_ERROR(Charge(key, StringMemory(s.size())));
        *out = GgufValue::String(std::move(s));
        return OkStatus();
      }
      case GgufType::kArray:
        return ReadArray(key, depth, out);
    }
    return Error("metadata key '{}': unknown value type {}", key, static_cast<uint32_t>(type));
  }

  Status ReadArray(std::string_view key, int depth, GgufValue* out) {
    if (depth >= kMaxArrayDepth) {
      return Error("metadata key '{}': arrays nested deeper than {}", key, kMaxArrayDepth);
    }
    GgufType element_type{};
    TS_RETURN_IF_ERROR(ReadType(key, &element_type));
    uint64_t count = 0;
    if (!reader_.Read(&count)) return Truncated(fmt::format("array length of '{}'", key));
    if (count > reader_.remaining() / MinElementBytes(element_type)) {
      return Error("metadata key '{}': array length {} exceeds what the {} bytes left can hold",
                   key, count, reader_.remaining());
    }
    num_elements_ += count;
    if (num_elements_ > kMaxMetadataElements) {
      return Error("metadata key '{}': more than {} array elements in total", key,
                   kMaxMetadataElements);
    }
    if (element_type == GgufType::kString) {
      // Grown as elements are read, so memory follows the bytes actually present.
      TS_RETURN_IF_ERROR(Charge(key, count * sizeof(std::string)));
      std::vector<std::string> strings;
      strings.reserve(std::min<uint64_t>(count, kReserveLimit));
      const std::string what = fmt::format("value of '{}'", key);
      for (uint64_t i = 0; i < count; ++i) {
        TS_RETURN_IF_ERROR(
            ReadString(what, UINT64_MAX, &strings.emplace_back(), static_cast<int64_t>(i)));
        TS_RETURN_IF_ERROR(Charge(key, StringMemory(strings.back().size()) - sizeof(std::string)));
      }
      *out = GgufValue::StringArray(std::move(strings));
      return OkStatus();
    }
    TS_RETURN_IF_ERROR(Charge(key, count * sizeof(GgufValue)));
    std::vector<GgufValue> elements;
    elements.reserve(std::min<uint64_t>(count, kReserveLimit));
    for (uint64_t i = 0; i < count; ++i) {
      TS_RETURN_IF_ERROR(ReadValue(key, element_type, depth + 1, &elements.emplace_back()));
    }
    *out = GgufValue::Array(element_type, std::move(elements));
    return OkStatus();
  }

  Status ParseMetadata() {
    out_.metadata_.reserve(std::min<uint64_t>(num_kv_, kReserveLimit));
    for (uint64_t i = 0; i < num_kv_; ++i) {
      std::string key;
      TS_RETURN_IF_ERROR(ReadString(fmt::format("metadata key #{}", i), kMaxKeyBytes, &key));
      if (key.empty()) return Error("metadata key #{} is empty", i);
      // The pair, the key's copy in the index and the index node (approximately).
      TS_RETURN_IF_ERROR(Charge(
          key, sizeof(std::pair<std::string, GgufValue>) + 2 * StringMemory(key.size()) + 32));
      GgufType type{};
      TS_RETURN_IF_ERROR(ReadType(key, &type));
      GgufValue value;
      TS_RETURN_IF_ERROR(ReadValue(key, type, 0, &value));
      if (!out_.metadata_index_.emplace(key, out_.metadata_.size()).second) {
        return Error("duplicate metadata key '{}'", key);
      }
      out_.metadata_.emplace_back(std::move(key), std::move(value));
    }
    return OkStatus();
  }

  Status ParseAlignment() {
    const GgufValue* v = out_.Find("general.alignment");
    if (v == nullptr) return OkStatus();
    const std::optional<uint64_t> a = v->AsU64();
    if (v->type() == GgufType::kBool || !a.has_value()) {
      return Error("metadata key 'general.alignment': expected an unsigned integer, got {}",
                   GgufTypeName(v->type()));
    }
    if (*a == 0 || *a % 8 != 0 || (*a & (*a - 1)) != 0 || *a > kMaxAlignment) {
      return Error("metadata key 'general.alignment': {} is not a power of two multiple of 8", *a);
    }
    out_.alignment_ = *a;
    return OkStatus();
  }

  Status ParseTensorInfo(uint64_t i, TensorView* t, uint64_t* offset) {
    TS_RETURN_IF_ERROR(
        ReadString(fmt::format("name of tensor #{}", i), kGgufMaxTensorNameBytes, &t->name));
    const std::string& name = t->name;
    uint32_t num_dims = 0;
    if (!reader_.Read(&num_dims)) return Truncated(fmt::format("dims of tensor '{}'", name));
    if (num_dims == 0 || num_dims > kGgufMaxDims) {
      return Error("tensor '{}': {} dimensions (must be 1..{})", name, num_dims, kGgufMaxDims);
    }
    std::vector<int64_t> ne(num_dims);
    int64_t num_elements = 1;
    for (uint32_t d = 0; d < num_dims; ++d) {
      uint64_t dim = 0;
      if (!reader_.Read(&dim)) return Truncated(fmt::format("dims of tensor '{}'", name));
      if (dim == 0 || dim > static_cast<uint64_t>(INT64_MAX)) {
        return Error("tensor '{}': invalid dimension ne[{}] = {}", name, d, dim);
      }
      ne[d] = static_cast<int64_t>(dim);
      if (__builtin_mul_overflow(num_elements, ne[d], &num_elements)) {
        return Error("tensor '{}': element count overflows", name);
      }
    }
    uint32_t type_id = 0;
    if (!reader_.Read(&type_id)) return Truncated(fmt::format("type of tensor '{}'", name));
    const std::optional<DType> dtype = DTypeFromGgmlId(type_id);
    if (!dtype) {
      const std::string_view known = GgmlTypeNameOfUnsupported(type_id);
      if (!known.empty()) {
        return UnimplementedError("{}: unsupported tensor type {} (ggml type {}) in tensor '{}'",
                                  out_.path(), known, type_id, name);
      }
      return UnimplementedError(
          "{}: unsupported tensor type {} (a ggml type id this build does not know) in tensor "
          "'{}'",
          out_.path(), type_id, name);
    }
    t->dtype = *dtype;
    if (!reader_.Read(offset)) return Truncated(fmt::format("offset of tensor '{}'", name));
    if (*offset % out_.alignment_ != 0) {
      return Error("tensor '{}': data offset {} is not a multiple of the alignment {}", name,
                   *offset, out_.alignment_);
    }
    const std::optional<uint64_t> row_bytes = RowBytes(*dtype, ne[0]);
    if (!row_bytes) {
      return Error("tensor '{}': row length {} is not a multiple of the {} block size {}", name,
                   ne[0], DTypeName(*dtype), BlockSize(*dtype));
    }
    const uint64_t rows = static_cast<uint64_t>(num_elements / ne[0]);
    if (__builtin_mul_overflow(*row_bytes, rows, &t->num_bytes)) {
      return Error("tensor '{}': byte size overflows", name);
    }
    t->shape.assign(ne.rbegin(), ne.rend());
    return OkStatus();
  }

  Status ParseTensorInfos() {
    out_.tensors_.resize(num_tensors_);
    offsets_.resize(num_tensors_);
    for (uint64_t i = 0; i < num_tensors_; ++i) {
      TS_RETURN_IF_ERROR(ParseTensorInfo(i, &out_.tensors_[i], &offsets_[i]));
      if (!out_.tensor_index_.emplace(out_.tensors_[i].name, i).second) {
        return Error("duplicate tensor name '{}'", out_.tensors_[i].name);
      }
    }
    const uint64_t end = reader_.pos();
    out_.data_offset_ = end + (out_.alignment_ - end % out_.alignment_) % out_.alignment_;
    return OkStatus();
  }

  Status CheckTensorData() {
    if (num_tensors_ == 0) return OkStatus();
    const uint64_t file_size = reader_.size();
    if (out_.data_offset_ > file_size) {
      return Error("truncated file: tensor data section starts at {} but the file has {} bytes",
                   out_.data_offset_, file_size);
    }
    const uint64_t data_size = file_size - out_.data_offset_;
    for (size_t i = 0; i < out_.tensors_.size(); ++i) {
      TensorView& t = out_.tensors_[i];
      if (offsets_[i] > data_size || t.num_bytes > data_size - offsets_[i]) {
        return Error("tensor '{}': data [{}, +{}) runs past the end of the data section ({} bytes)",
                     t.name, offsets_[i], t.num_bytes, data_size);
      }
      t.data = out_.file_.data() + out_.data_offset_ + offsets_[i];
    }
    std::vector<size_t> order(out_.tensors_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return offsets_[a] < offsets_[b]; });
    for (size_t k = 1; k < order.size(); ++k) {
      const size_t prev = order[k - 1], cur = order[k];
      if (offsets_[prev] + out_.tensors_[prev].num_bytes > offsets_[cur]) {
        return Error("tensor '{}' overlaps tensor '{}'", out_.tensors_[cur].name,
                     out_.tensors_[prev].name);
      }
    }
    return OkStatus();
  }

  GgufFile out_;
  ByteReader reader_;
  uint64_t num_tensors_ = 0;
  uint64_t num_kv_ = 0;
  uint64_t metadata_memory_ = 0;  // parsed metadata so far, see kMaxMetadataMemory
  uint64_t num_elements_ = 0;
  std::vector<uint64_t> offsets_;
};

StatusOr<GgufFile> GgufFile::Open(const std::string& path) {
  TS_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  return GgufParser(std::move(file)).Parse();
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = metadata_index_.find(std::string(key));
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

std::optional<std::string> GgufFile::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  return v ? v->AsString() : std::nullopt;
}

std::optional<uint64_t> GgufFile::GetUint(std::string_view key) const {
  const GgufValue* v = Find(key);
  return v ? v->AsU64() : std::nullopt;
}

std::optional<double> GgufFile::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  return v ? v->AsF64() : std::nullopt;
}

std::optional<bool> GgufFile::GetBool(std::string_view key) const {
  const GgufValue* v = Find(key);
  return v ? v->AsBool() : std::nullopt;
}

const TensorView* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace tinyserve
