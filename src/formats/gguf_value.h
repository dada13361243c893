// GgufValue: one GGUF metadata value (a scalar of any GGUF type, a string, or an array whose
// elements share one type, arrays nested). Plain value type: copyable, thread-compatible.
// Built by the GGUF reader from a file and by callers that fill a GgufWriter.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tinyserve {

// Value type ids as stored in GGUF files.
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// "uint8", "string", "array", ...; "unknown" outside the enum.
std::string_view GgufTypeName(GgufType t);
// True for ids 0..12.
bool IsValidGgufType(uint32_t id);
// Bytes of one scalar of type `t` in a file (bool = 1); 0 for string and array.
size_t GgufScalarBytes(GgufType t);

class GgufValue {
 public:
  // A uint32 zero.
  GgufValue() = default;

  static GgufValue Uint8(uint8_t v);
  static GgufValue Int8(int8_t v);
  static GgufValue Uint16(uint16_t v);
  static GgufValue Int16(int16_t v);
  static GgufValue Uint32(uint32_t v);
  static GgufValue Int32(int32_t v);
  static GgufValue Uint64(uint64_t v);
  static GgufValue Int64(int64_t v);
  static GgufValue Float32(float v);
  static GgufValue Float64(double v);
  static GgufValue Bool(bool v);
  static GgufValue String(std::string v);
  // An array of `element_type`. Requires every element to have that type (arrays of arrays
  // may mix inner element types, as GGUF allows).
  static GgufValue Array(GgufType element_type, std::vector<GgufValue> elements);
  static GgufValue StringArray(std::vector<std::string> v);
  static GgufValue Int32Array(std::span<const int32_t> v);
  static GgufValue Uint32Array(std::span<const uint32_t> v);
  static GgufValue Int64Array(std::span<const int64_t> v);
  static GgufValue Float32Array(std::span<const float> v);

  GgufType type() const { return type_; }
  bool is_array() const { return type_ == GgufType::kArray; }

  // Numeric accessors. Integer types convert to each other and to/from floats only when the
  // value is represented exactly; nullopt otherwise (and for bool, string, array).
  std::optional<uint64_t> AsU64() const;
  std::optional<int64_t> AsI64() const;
  std::optional<double> AsF64() const;
  // Only for kBool.
  std::optional<bool> AsBool() const;
  // Only for kString (a copy; see string_value() for a reference).
  std::optional<std::string> AsString() const;
  // Requires type() == kString.
  const std::string& string_value() const;

  // Arrays. element_type() and size() require is_array().
  GgufType element_type() const { return element_type_; }
  size_t size() const;
  // Element i (a copy); requires is_array() and i < size().
  GgufValue At(size_t i) const;
  // The elements of a string array; empty for other types.
  const std::vector<std::string>& strings() const;
  // The elements of an array of non-string type (scalars or nested arrays); empty otherwise.
  const std::vector<GgufValue>& elements() const;
  // Every element through AsI64 / AsF64; nullopt if not an array or any element does not convert.
  std::optional<std::vector<int64_t>> AsI64Array() const;
  std::optional<std::vector<double>> AsF64Array() const;

  // Deep equality: same types and equal values (floats compare with ==, so NaN != NaN).
  bool operator==(const GgufValue& other) const;

 private:
  GgufType type_ = GgufType::kUint32;
  GgufType element_type_ = GgufType::kUint8;  // meaningful when type_ == kArray
  // uint64_t: unsigned ints and bool; int64_t: signed ints; double: floats; std::string;
  // vector<string>: string arrays; vector<GgufValue>: other arrays.
  std::variant<uint64_t, int64_t, double, std::string, std::vector<std::string>,
               std::vector<GgufValue>>
      v_ = uint64_t{0};
};

}  // namespace tinyserve
