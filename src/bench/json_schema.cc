#include "bench/json_schema.h"

#include <cmath>
#include <set>
#include <string_view>

namespace tinyserve::bench {
namespace {

using nlohmann::json;

// Counts code points: JSON Schema string lengths are in characters, not UTF-8 bytes.
size_t CodePointCount(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool IsNumber(const json& v) { return v.is_number(); }

// JSON Schema calls 3.0 an integer: the type is about the value, not the notation.
bool IsInteger(const json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  double d = v.get<double>();
  return std::isfinite(d) && std::floor(d) == d;
}

bool MatchesType(const std::string& type, const json& v) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "number") return IsNumber(v);
  if (type == "integer") return IsInteger(v);
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  return false;
}

// Structural equality as JSON Schema defines it: 1 equals 1.0, but true never equals 1.
bool JsonEqual(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!JsonEqual(a[i], b[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it) {
      auto other = b.find(it.key());
      if (other == b.end() || !JsonEqual(it.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

std::string Short(const json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

Status Fail(const std::string& path, const std::string& what) {
  return InvalidArgumentError("{}: {}", path, what);
}

Status Validate(const json& schema, const json& v, const std::string& path);

Status ValidateNumber(const json& schema, const json& v, const std::string& path) {
  double x = v.get<double>();
  if (auto it = schema.find("minimum");
      it != schema.end() && it->is_number() && x < it->get<double>()) {
    return Fail(path, fmt::format("{} is below minimum {}", Short(v), it->dump()));
  }
  if (auto it = schema.find("maximum");
      it != schema.end() && it->is_number() && x > it->get<double>()) {
    return Fail(path, fmt::format("{} is above maximum {}", Short(v), it->dump()));
  }
  if (auto it = schema.find("exclusiveMinimum");
      it != schema.end() && it->is_number() && x <= it->get<double>()) {
    return Fail(path, fmt::format("{} is not above {}", Short(v), it->dump()));
  }
  if (auto it = schema.find("exclusiveMaximum");
      it != schema.end() && it->is_number() && x >= it->get<double>()) {
    return Fail(path, fmt::format("{} is not below {}", Short(v), it->dump()));
  }
  return OkStatus();
}

Status ValidateString(const json& schema, const json& v, const std::string& path) {
  size_t len = CodePointCount(v.get_ref<const std::string&>());
  if (auto it = schema.find("minLength");
      it != schema.end() && it->is_number() && static_cast<double>(len) < it->get<double>()) {
    return Fail(path, fmt::format("string of {} characters is shorter than {}", len, it->dump()));
  }
  if (auto it = schema.find("maxLength");
      it != schema.end() && it->is_number() && static_cast<double>(len) > it->get<double>()) {
    return Fail(path, fmt::format("string of {} characters is longer than {}", len, it->dump()));
  }
  return OkStatus();
}

Status ValidateArray(const json& schema, const json& v, const std::string& path) {
  double n = static_cast<double>(v.size());
  if (auto it = schema.find("minItems");
      it != schema.end() && it->is_number() && n < it->get<double>()) {
    return Fail(path, fmt::format("{} items, fewer than {}", v.size(), it->dump()));
  }
  if (auto it = schema.find("maxItems");
      it != schema.end() && it->is_number() && n > it->get<double>()) {
    return Fail(path, fmt::format("{} items, more than {}", v.size(), it->dump()));
  }
  if (auto it = schema.find("items"); it != schema.end() && (it->is_object() || it->is_boolean())) {
    for (size_t i = 0; i < v.size(); ++i) {
      TS_RETURN_IF_ERROR(Validate(*it, v[i], fmt::format("{}[{}]", path, i)));
    }
  }
  return OkStatus();
}

Status ValidateObject(const json& schema, const json& v, const std::string& path) {
  if (auto it = schema.find("required"); it != schema.end() && it->is_array()) {
    for (const json& key : *it) {
      if (key.is_string() && !v.contains(key.get<std::string>())) {
        return Fail(path, fmt::format("missing required property \"{}\"", key.get<std::string>()));
      }
    }
  }
  const json* properties = nullptr;
  if (auto it = schema.find("properties"); it != schema.end() && it->is_object()) {
    properties = &*it;
  }
  auto additional = schema.find("additionalProperties");
  for (auto it = v.begin(); it != v.end(); ++it) {
    std::string child = path + "." + it.key();
    if (properties != nullptr && properties->contains(it.key())) {
      TS_RETURN_IF_ERROR(Validate((*properties)[it.key()], it.value(), child));
    } else if (additional != schema.end()) {
      TS_RETURN_IF_ERROR(Validate(*additional, it.value(), child));
    }
  }
  return OkStatus();
}

Status Validate(const json& schema, const json& v, const std::string& path) {
  if (schema.is_boolean()) {
    return schema.get<bool>() ? OkStatus() : Fail(path, "no value is allowed here");
  }
  if (!schema.is_object()) return OkStatus();
  if (auto it = schema.find("type"); it != schema.end()) {
    bool ok = false;
    if (it->is_string()) {
      ok = MatchesType(it->get<std::string>(), v);
    } else if (it->is_array()) {
      for (const json& t : *it) ok = ok || (t.is_string() && MatchesType(t.get<std::string>(), v));
    }
    if (!ok) return Fail(path, fmt::format("{} is not of type {}", Short(v), it->dump()));
  }
  if (auto it = schema.find("const"); it != schema.end() && !JsonEqual(*it, v)) {
    return Fail(path, fmt::format("{} is not {}", Short(v), Short(*it)));
  }
  if (auto it = schema.find("enum"); it != schema.end() && it->is_array()) {
    bool found = false;
    for (const json& e : *it) found = found || JsonEqual(e, v);
    if (!found) return Fail(path, fmt::format("{} is not one of {}", Short(v), Short(*it)));
  }
  if (v.is_number()) TS_RETURN_IF_ERROR(ValidateNumber(schema, v, path));
  if (v.is_string()) TS_RETURN_IF_ERROR(ValidateString(schema, v, path));
  if (v.is_array()) TS_RETURN_IF_ERROR(ValidateArray(schema, v, path));
  if (v.is_object()) TS_RETURN_IF_ERROR(ValidateObject(schema, v, path));
  if (auto it = schema.find("anyOf"); it != schema.end() && it->is_array()) {
    for (const json& alternative : *it) {
      if (Validate(alternative, v, path).ok()) return OkStatus();
    }
    return Fail(path, fmt::format("{} matches none of the anyOf alternatives", Short(v)));
  }
  return OkStatus();
}

Status CheckSupported(const json& schema, const std::string& path) {
  static const std::set<std::string_view> kValidating = {"type",
                                                         "properties",
                                                         "required",
                                                         "additionalProperties",
                                                         "items",
                                                         "enum",
                                                         "const",
                                                         "minimum",
                                                         "maximum",
                                                         "exclusiveMinimum",
                                                         "exclusiveMaximum",
                                                         "minLength",
                                                         "maxLength",
                                                         "minItems",
                                                         "maxItems",
                                                         "anyOf"};
  static const std::set<std::string_view> kAnnotations = {
      "title", "description", "$schema", "$id", "$comment", "default", "examples"};
  if (schema.is_boolean()) return OkStatus();
  if (!schema.is_object()) return InvalidArgumentError("{}: a schema must be an object", path);
  for (auto it = schema.begin(); it != schema.end(); ++it) {
    const std::string& key = it.key();
    if (kAnnotations.count(key) != 0) continue;
    if (kValidating.count(key) == 0) {
      return UnimplementedError("{}: schema keyword \"{}\" is not supported", path, key);
    }
    const json& value = it.value();
    if (key == "properties") {
      if (!value.is_object()) return InvalidArgumentError("{}.properties: not an object", path);
      for (auto p = value.begin(); p != value.end(); ++p) {
        TS_RETURN_IF_ERROR(CheckSupported(p.value(), path + ".properties." + p.key()));
      }
    } else if (key == "items" || key == "additionalProperties") {
      TS_RETURN_IF_ERROR(CheckSupported(value, fmt::format("{}.{}", path, key)));
    } else if (key == "anyOf") {
      if (!value.is_array() || value.empty()) {
        return InvalidArgumentError("{}.anyOf: not a non-empty array", path);
      }
      for (size_t i = 0; i < value.size(); ++i) {
        TS_RETURN_IF_ERROR(CheckSupported(value[i], fmt::format("{}.anyOf[{}]", path, i)));
      }
    } else if (key == "required" || key == "enum") {
      if (!value.is_array()) return InvalidArgumentError("{}.{}: not an array", path, key);
    } else if (key == "type") {
      if (!value.is_string() && !value.is_array()) {
        return InvalidArgumentError("{}.type: not a string or array", path);
      }
    } else if (key != "const" && !value.is_number()) {
      return InvalidArgumentError("{}.{}: not a number", path, key);
    }
  }
  return OkStatus();
}

}  // namespace

Status CheckSchemaSupported(const nlohmann::json& schema) { return CheckSupported(schema, "$"); }

Status ValidateJsonSchema(const nlohmann::json& schema, const nlohmann::json& instance) {
  return Validate(schema, instance, "$");
}

}  // namespace tinyserve::bench
