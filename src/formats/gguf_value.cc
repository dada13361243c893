#include "formats/gguf_value.h"

#include <cmath>
#include <limits>

#include "util/check.h"

namespace tinyserve {
namespace {

bool IsUnsignedInt(GgufType t) {
  return t == GgufType::kUint8 || t == GgufType::kUint16 || t == GgufType::kUint32 ||
         t == GgufType::kUint64;
}
bool IsSignedInt(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 ||
         t == GgufType::kInt64;
}
bool IsFloat(GgufType t) { return t == GgufType::kFloat32 || t == GgufType::kFloat64; }

// 2^63 and 2^64 as doubles: bounds for exact float -> integer conversion.
constexpr double kTwo63 = 9223372036854775808.0;
constexpr double kTwo64 = 18446744073709551616.0;

template <typename T>
GgufValue NumericArray(GgufType type, std::span<const T> v, GgufValue (*make)(T)) {
  std::vector<GgufValue> elements;
  elements.reserve(v.size());
  for (T x : v) elements.push_back(make(x));
  return GgufValue::Array(type, std::move(elements));
}

}  // namespace

std::string_view GgufTypeName(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
      return "uint8";
    case GgufType::kInt8:
      return "int8";
    case GgufType::kUint16:
      return "uint16";
    case GgufType::kInt16:
      return "int16";
    case GgufType::kUint32:
      return "uint32";
    case GgufType::kInt32:
      return "int32";
    case GgufType::kFloat32:
      return "float32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "uint64";
    case GgufType::kInt64:
      return "int64";
    case GgufType::kFloat64:
      return "float64";
  }
  return "unknown";
}

bool IsValidGgufType(uint32_t id) { return id <= static_cast<uint32_t>(GgufType::kFloat64); }

size_t GgufScalarBytes(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

#define TS_GGUF_SCALAR(Name, CType, Tag, Stored) \
  GgufValue GgufValue::Name(CType v) {           \
    GgufValue r;                                 \
    r.type_ = GgufType::Tag;                     \
    r.v_ = static_cast<Stored>(v);               \
    return r;                                    \
  }
TS_GGUF_SCALAR(Uint8, uint8_t, kUint8, uint64_t)
TS_GGUF_SCALAR(Int8, int8_t, kInt8, int64_t)
TS_GGUF_SCALAR(Uint16, uint16_t, kUint16, uint64_t)
TS_GGUF_SCALAR(Int16, int16_t, kInt16, int64_t)
TS_GGUF_SCALAR(Uint32, uint32_t, kUint32, uint64_t)
TS_GGUF_SCALAR(Int32, int32_t, kInt32, int64_t)
TS_GGUF_SCALAR(Uint64, uint64_t, kUint64, uint64_t)
TS_GGUF_SCALAR(Int64, int64_t, kInt64, int64_t)
TS_GGUF_SCALAR(Float32, float, kFloat32, double)
TS_GGUF_SCALAR(Float64, double, kFloat64, double)
TS_GGUF_SCALAR(Bool, bool, kBool, uint64_t)
#undef TS_GGUF_SCALAR

GgufValue GgufValue::String(std::string v) {
  GgufValue r;
  r.type_ = GgufType::kString;
  r.v_ = std::move(v);
  return r;
}

GgufValue GgufValue::Array(GgufType element_type, std::vector<GgufValue> elements) {
  GgufValue r;
  r.type_ = GgufType::kArray;
  r.element_type_ = element_type;
  if (element_type == GgufType::kString) {
    std::vector<std::string> strings;
    strings.reserve(elements.size());
    for (auto& e : elements) {
      TS_CHECK(e.type() == GgufType::kString);
      strings.push_back(std::move(std::get<std::string>(e.v_)));
    }
    r.v_ = std::move(strings);
    return r;
  }
  for (const auto& e : elements) TS_CHECK(e.type() == element_type);
  r.v_ = std::move(elements);
  return r;
}

GgufValue GgufValue::StringArray(std::vector<std::string> v) {
  GgufValue r;
  r.type_ = GgufType::kArray;
  r.element_type_ = GgufType::kString;
  r.v_ = std::move(v);
  return r;
}

GgufValue GgufValue::Int32Array(std::span<const int32_t> v) {
  return NumericArray<int32_t>(GgufType::kInt32, v, &GgufValue::Int32);
}
GgufValue GgufValue::Uint32Array(std::span<const uint32_t> v) {
  return NumericArray<uint32_t>(GgufType::kUint32, v, &GgufValue::Uint32);
}
GgufValue GgufValue::Int64Array(std::span<const int64_t> v) {
  return NumericArray<int64_t>(GgufType::kInt64, v, &GgufValue::Int64);
}
GgufValue GgufValue::Float32Array(std::span<const float> v) {
  return NumericArray<float>(GgufType::kFloat32, v, &GgufValue::Float32);
}

std::optional<uint64_t> GgufValue::AsU64() const {
  if (IsUnsignedInt(type_)) return std::get<uint64_t>(v_);
  if (IsSignedInt(type_)) {
    const int64_t i = std::get<int64_t>(v_);
    if (i < 0) return std::nullopt;
    return static_cast<uint64_t>(i);
  }
  if (IsFloat(type_)) {
    const double d = std::get<double>(v_);
    if (!(d >= 0.0 && d < kTwo64) || std::trunc(d) != d) return std::nullopt;
    return static_cast<uint64_t>(d);
  }
  return std::nullopt;
}

std::optional<int64_t> GgufValue::AsI64() const {
  if (IsSignedInt(type_)) return std::get<int64_t>(v_);
  if (IsUnsignedInt(type_)) {
    const uint64_t u = std::get<uint64_t>(v_);
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (IsFloat(type_)) {
    const double d = std::get<double>(v_);
    if (!(d >= -kTwo63 && d < kTwo63) || std::trunc(d) != d) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::optional<double> GgufValue::AsF64() const {
  if (IsFloat(type_)) return std::get<double>(v_);
  // Integers convert when the double holds them exactly (|v| <= 2^53 always does).
  if (IsUnsignedInt(type_)) {
    const uint64_t u = std::get<uint64_t>(v_);
    const double d = static_cast<double>(u);
    if (d >= kTwo64 || static_cast<uint64_t>(d) != u) return std::nullopt;
    return d;
  }
  if (IsSignedInt(type_)) {
    const int64_t i = std::get<int64_t>(v_);
    const double d = static_cast<double>(i);
    if (d >= kTwo63 || static_cast<int64_t>(d) != i) return std::nullopt;
    return d;
  }
  return std::nullopt;
}

std::optional<bool> GgufValue::AsBool() const {
  if (type_ != GgufType::kBool) return std::nullopt;
  return std::get<uint64_t>(v_) != 0;
}

std::optional<std::string> GgufValue::AsString() const {
  if (type_ != GgufType::kString) return std::nullopt;
  return std::get<std::string>(v_);
}

const std::string& GgufValue::string_value() const {
  TS_CHECK(type_ == GgufType::kString);
  return std::get<std::string>(v_);
}

size_t GgufValue::size() const {
  TS_CHECK(is_array());
  if (element_type_ == GgufType::kString) return std::get<std::vector<std::string>>(v_).size();
  return std::get<std::vector<GgufValue>>(v_).size();
}

GgufValue GgufValue::At(size_t i) const {
  TS_CHECK(i < size());
  if (element_type_ == GgufType::kString) return String(strings()[i]);
  return elements()[i];
}

const std::vector<std::string>& GgufValue::strings() const {
  static const std::vector<std::string> kEmpty;
  const auto* s = std::get_if<std::vector<std::string>>(&v_);
  return s != nullptr ? *s : kEmpty;
}

const std::vector<GgufValue>& GgufValue::elements() const {
  static const std::vector<GgufValue> kEmpty;
  const auto* e = std::get_if<std::vector<GgufValue>>(&v_);
  return e != nullptr ? *e : kEmpty;
}

std::optional<std::vector<int64_t>> GgufValue::AsI64Array() const {
  if (!is_array() || element_type_ == GgufType::kString) return std::nullopt;
  std::vector<int64_t> out;
  out.reserve(elements().size());
  for (const auto& e : elements()) {
    auto v = e.AsI64();
    if (!v) return std::nullopt;
    out.push_back(*v);
  }
  return out;
}

std::optional<std::vector<double>> GgufValue::AsF64Array() const {
  if (!is_array() || element_type_ == GgufType::kString) return std::nullopt;
  std::vector<double> out;
  out.reserve(elements().size());
  for (const auto& e : elements()) {
    auto v = e.AsF64();
    if (!v) return std::nullopt;
    out.push_back(*v);
  }
  return out;
}

bool GgufValue::operator==(const GgufValue& other) const {
  if (type_ != other.type_) return false;
  if (is_array() && element_type_ != other.element_type_) return false;
  return v_ == other.v_;
}

}  // namespace tinyserve
