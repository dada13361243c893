#include "structured/json_schema.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "structured/json_limits.h"
#include "structured/json_schema_number.h"
#include "structured/json_schema_ref.h"
#include "structured/regex.h"

namespace tinyserve::structured {
namespace {

using Json = nlohmann::ordered_json;

const std::set<std::string>& KnownKeywords() {
  static const std::set<std::string> k = {
      "type", "properties", "required", "additionalProperties", "enum", "const", "items",
      "prefixItems", "minItems", "maxItems", "anyOf", "oneOf", "allOf", "$ref", "$defs",
      "definitions", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
      "exclusiveMinimum", "exclusiveMaximum",
      // Annotations: no effect on validity.
      "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
      "readOnly", "writeOnly", "strict", "name"};
  return k;
}

Expr Ws() { return Expr::Opt(Expr::Byte(' ')); }
Expr Sep() { return Expr::Seq({Expr::Byte(','), Ws()}); }

// One JSON string character (code point or escape).
Expr JsonChar() {
  return Expr::Alt(
      {Expr::CodePointsExcept({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}),
       Expr::Seq(
           {Expr::Byte('\\'),
            Expr::Alt({Expr::Bytes({{'"', '"'},
                                    {'\\', '\\'},
                                    {'/', '/'},
                                    {'b', 'b'},
                                    {'f', 'f'},
                                    {'n', 'n'},
                                    {'r', 'r'},
                                    {'t', 't'}}),
                       Expr::Seq({Expr::Byte('u'),
                                  Expr::Repeat(Expr::Bytes({{'0', '9'}, {'a', 'f'}, {'A', 'F'}}), 4,
                                               4)})})})});
}

std::string Pointer(const std::string& path) { return path.empty() ? "/" : path; }

// The formats a string may be constrained to, as anchored patterns of ASCII characters, with
// the fewest and most characters a string of each has.
struct FormatPattern {
  std::string pattern;
  int64_t min_len, max_len;
};

std::optional<FormatPattern> PatternOfFormat(const std::string& f) {
  const std::string date =
      "[1-9]\\d{3}-(02-(0[1-9]|1\\d|2[0-8])|(0[469]|11)-(0[1-9]|[12]\\d|30)|"
      "(0[13578]|1[02])-(0[1-9]|[12]\\d|3[01]))";  // 10 characters
  // 8 characters, then up to 7 of fractional seconds, then 1 or 6 of zone: 9-21.
  const std::string time =
      "([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(\\.\\d{1,6})?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)";
  if (f == "date") return FormatPattern{"^" + date + "$", 10, 10};
  if (f == "time") return FormatPattern{"^" + time + "$", 9, 21};
  if (f == "date-time") return FormatPattern{"^" + date + "T" + time + "$", 20, 32};
  if (f == "email") {
    // 1-32 @ 1-32, up to 3 more labels of 1 + 1-32, then 1 + 2-8: 6-173.
    return FormatPattern{
        "^[A-Za-z0-9._+-]{1,32}@[A-Za-z0-9-]{1,32}(\\.[A-Za-z0-9-]{1,32}){0,3}\\.[A-Za-z]{2,8}$", 6,
        173};
  }
  if (f == "uuid") {
    return FormatPattern{
        "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", 36, 36};
  }
  if (f == "ipv4") {
    const std::string octet = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
    return FormatPattern{"^(" + octet + "\\.){3}" + octet + "$", 7, 15};
  }
  return std::nullopt;
}

// Rule names and listed paths are capped: a 200 KB property name above 10,000 subschemas would
// otherwise be copied into every rule name below it (gigabytes).
std::string Truncated(std::string s) {
  constexpr size_t kMax = 160;
  if (s.size() > kMax) s = s.substr(0, kMax) + "...";
  return s;
}

class SchemaCompiler {
 public:
  static constexpr size_t kMaxListed = 32;  // unsupported keywords named in the error

  SchemaCompiler(const Json& root, const JsonSchemaOptions& o)
      : root_(root), opt_(o), b_(o.limits) {}

  StatusOr<Grammar> CompileRoot() {
    TS_ASSIGN_OR_RETURN(int32_t root_rule, b_.DeclareRule("root"));
    ref_rules_["#"] = root_rule;
    TS_ASSIGN_OR_RETURN(Expr body, Node(root_, "", 0));
    if (!unsupported_.empty()) return UnsupportedError();
    TS_RETURN_IF_ERROR(b_.DefineRule(root_rule, body));
    if (opt_.wrap_prefix.empty() && opt_.wrap_suffix.empty() && opt_.wrap_max_count == 1) {
      return b_.Finish(root_rule);
    }
    const Expr one = Expr::Seq(
        {Expr::Literal(opt_.wrap_prefix), Expr::Ref(root_rule), Expr::Literal(opt_.wrap_suffix)});
    const Expr more = Expr::Seq({Expr::Literal(opt_.wrap_separator), one});
    TS_ASSIGN_OR_RETURN(
        int32_t top,
        b_.AddRule("wrapped",
                   Expr::Seq({one, opt_.wrap_max_count < 0
                                       ? Expr::Star(more)
                                       : Expr::Repeat(more, 0, opt_.wrap_max_count - 1)})));
    return b_.Finish(top);
  }

  StatusOr<Grammar> CompileAnyObject() {
    TS_ASSIGN_OR_RETURN(int32_t value, AnyValueRule());
    (void)value;
    TS_ASSIGN_OR_RETURN(int32_t root, b_.AddRule("root", Expr::Ref(any_object_)));
    return b_.Finish(root);
  }

 private:
  Status UnsupportedError() const {
    std::string list;
    for (const std::string& u : unsupported_) list += (list.empty() ? "" : ", ") + u;
    return InvalidArgumentError("unsupported JSON Schema keywords: {}", list);
  }

  // The rules of any JSON value; returns the value rule.
  StatusOr<int32_t> AnyValueRule() {
    if (any_value_ >= 0) return any_value_;
    TS_ASSIGN_OR_RETURN(any_value_, b_.DeclareRule("json_value"));
    TS_ASSIGN_OR_RETURN(any_object_, b_.DeclareRule("json_object"));
    TS_ASSIGN_OR_RETURN(int32_t array, b_.DeclareRule("json_array"));
    TS_ASSIGN_OR_RETURN(int32_t str, StringRule());
    TS_ASSIGN_OR_RETURN(int32_t num, b_.AddRule("json_number", AnyJsonNumber()));
    const Expr v = Expr::Ref(any_value_);
    const Expr member = Expr::Seq({Expr::Ref(str), Expr::Byte(':'), Ws(), v});
    TS_RETURN_IF_ERROR(b_.DefineRule(
        any_object_,
        Expr::Seq({Expr::Byte('{'),
                   Expr::Opt(Expr::Seq({member, Expr::Star(Expr::Seq({Sep(), member}))})),
                   Expr::Byte('}')})));
    TS_RETURN_IF_ERROR(b_.DefineRule(
        array,
        Expr::Seq({Expr::Byte('['), Expr::Opt(Expr::Seq({v, Expr::Star(Expr::Seq({Sep(), v}))})),
                   Expr::Byte(']')})));
    TS_RETURN_IF_ERROR(b_.DefineRule(
        any_value_,
        Expr::Alt({Expr::Ref(any_object_), Expr::Ref(array), Expr::Ref(str), Expr::Ref(num),
                   Expr::Literal("true"), Expr::Literal("false"), Expr::Literal("null")})));
    return any_value_;
  }

  StatusOr<int32_t> StringRule() {
    return b_.AddRule("json_string",
                      Expr::Seq({Expr::Byte('"'), Expr::Star(JsonChar()), Expr::Byte('"')}));
  }

  StatusOr<Expr> Node(const Json& s, const std::string& path, int depth) {
    if (depth > opt_.max_depth) {
      return InvalidArgumentError("schema nested deeper than {} at {}", opt_.max_depth,
                                  Pointer(path));
    }
    if (++num_nodes_ > opt_.max_schema_nodes) {
      return InvalidArgumentError("schema has more than {} subschemas", opt_.max_schema_nodes);
    }
    if (std::chrono::steady_clock::now() > opt_.deadline) {
      return TimeLimitError("schema compilation");
    }
    if (s.is_boolean()) {
      if (!s.get<bool>())
        return InvalidArgumentError("schema 'false' at {} matches nothing", Pointer(path));
      TS_ASSIGN_OR_RETURN(int32_t v, AnyValueRule());
      return Expr::Ref(v);
    }
    if (!s.is_object()) return InvalidArgumentError("schema at {} is not an object", Pointer(path));
    for (const auto& [key, value] : s.items()) {
      if (KnownKeywords().count(key) == 0 && unsupported_.size() < kMaxListed) {
        unsupported_.push_back(Truncated(fmt::format("{}/{}", path, key)));
      }
    }
    if (s.contains("$ref")) return RefNode(s, path, depth);
    if (s.contains("const") || s.contains("enum")) return LiteralNode(s, path);
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      const Json& list = s[key];
      if (!list.is_array() || list.empty()) {
        return InvalidArgumentError("'{}' at {} must be a non-empty array", key, Pointer(path));
      }
      std::vector<Expr> alts;
      for (size_t i = 0; i < list.size(); ++i) {
        TS_ASSIGN_OR_RETURN(Expr e,
                            Node(list[i], fmt::format("{}/{}/{}", path, key, i), depth + 1));
        alts.push_back(std::move(e));
      }
      return Rule(path, Expr::Alt(std::move(alts)));
    }
    if (s.contains("allOf")) return AllOf(s, path, depth);

    std::vector<std::string> types;
    if (s.contains("type")) {
      const Json& t = s["type"];
      if (t.is_string()) {
        types.push_back(t.get<std::string>());
      } else if (t.is_array() && !t.empty()) {
        for (const Json& x : t) {
          if (!x.is_string()) return InvalidArgumentError("bad 'type' at {}", Pointer(path));
          types.push_back(x.get<std::string>());
        }
      } else {
        return InvalidArgumentError("bad 'type' at {}", Pointer(path));
      }
    } else if (s.contains("properties") || s.contains("additionalProperties") ||
               s.contains("required")) {
      types.push_back("object");
    } else if (s.contains("items") || s.contains("prefixItems")) {
      types.push_back("array");
    } else if (s.contains("pattern") || s.contains("format") || s.contains("minLength") ||
               s.contains("maxLength")) {
      types.push_back("string");
    } else {
      TS_ASSIGN_OR_RETURN(int32_t v, AnyValueRule());
      return Expr::Ref(v);
    }
    std::vector<Expr> alts;
    for (const std::string& t : types) {
      TS_ASSIGN_OR_RETURN(Expr e, TypedNode(t, s, path, depth));
      alts.push_back(std::move(e));
    }
    return Rule(path, Expr::Alt(std::move(alts)));
  }

  // `const` or `enum`: the values that also have the schema's `type`, if it names one (a
  // validator refuses the others: {"const": 1, "type": "string"} matches nothing).
  StatusOr<Expr> LiteralNode(const Json& s, const std::string& path) {
    const bool is_const = s.contains("const");
    if (!is_const && (!s["enum"].is_array() || s["enum"].empty()))
      return InvalidArgumentError("'enum' at {} must be a non-empty array", Pointer(path));
    const Json values = is_const ? Json::array({s["const"]}) : s["enum"];
    std::vector<Expr> alts;
    for (const Json& v : values) {
      if (!s.contains("type") || HasType(v, s["type"])) alts.push_back(Expr::Literal(v.dump()));
    }
    if (alts.empty()) {
      return InvalidArgumentError("'{}' at {} has no value of the schema's 'type'",
                                  is_const ? "const" : "enum", Pointer(path));
    }
    return Expr::Alt(std::move(alts));
  }

  // Whether JSON value v has `type` (a name or a list of names); "integer": a number with no
  // fraction (JSON Schema counts 1.0).
  static bool HasType(const Json& v, const Json& type) {
    if (type.is_array()) {
      for (const Json& t : type)
        if (HasType(v, t)) return true;
      return false;
    }
    // Not a name: the value is kept (const and enum are read before 'type' is checked, so a
    // malformed 'type' beside them was never an error; it is not made one here).
    if (!type.is_string()) return true;
    const std::string& t = type.get_ref<const std::string&>();
    if (t == "integer")
      return v.is_number_integer() ||
             (v.is_number_float() && v.get<double>() == std::trunc(v.get<double>()));
    return (t == "number" && v.is_number()) || (t == "string" && v.is_string()) ||
           (t == "boolean" && v.is_boolean()) || (t == "null" && v.is_null()) ||
           (t == "array" && v.is_array()) || (t == "object" && v.is_object());
  }

  StatusOr<Expr> Rule(const std::string& path, const Expr& body) {
    TS_ASSIGN_OR_RETURN(int32_t id, b_.AddRule(Truncated(Pointer(path)), body));
    return Expr::Ref(id);
  }

  // The target is compiled one level deeper than the referring schema: a chain of $refs counts
  // against max_depth like nesting does (restarting at each $ref let 1,000-link chains recurse).
  StatusOr<Expr> RefNode(const Json& s, const std::string& path, int depth) {
    if (!s["$ref"].is_string())
      return InvalidArgumentError("'$ref' at {} is not a string", Pointer(path));
    const std::string ref = s["$ref"].get<std::string>();
    auto it = ref_rules_.find(ref);
    if (it != ref_rules_.end()) return Expr::Ref(it->second);
    TS_ASSIGN_OR_RETURN(const Json* target, ResolveJsonPointer(root_, ref));
    TS_ASSIGN_OR_RETURN(int32_t id, b_.DeclareRule(Truncated(ref)));
    ref_rules_[ref] = id;
    TS_ASSIGN_OR_RETURN(Expr body, Node(*target, ref.substr(1), depth + 1));
    TS_RETURN_IF_ERROR(b_.DefineRule(id, body));
    return Expr::Ref(id);
  }

  StatusOr<Expr> AllOf(const Json& s, const std::string& path, int depth) {
    if (!s["allOf"].is_array() || s["allOf"].empty()) {
      return InvalidArgumentError("'allOf' at {} must be a non-empty array", Pointer(path));
    }
    Json merged = Json::object();
    merged["type"] = "object";
    merged["properties"] = Json::object();
    merged["required"] = Json::array();
    std::vector<const Json*> parts{&s};
    for (const Json& p : s["allOf"]) {
      TS_ASSIGN_OR_RETURN(const Json* r, ResolveRefChain(root_, p));
      parts.push_back(r);
    }
    for (const Json* p : parts) {
      if (!p->is_object())
        return InvalidArgumentError("'allOf' at {} has a non-object part", Pointer(path));
      for (const auto& [key, value] : p->items()) {
        if (key == "allOf" && p == &s) continue;
        if (key == "properties") {
          for (const auto& [name, sub] : value.items()) merged["properties"][name] = sub;
        } else if (key == "required") {
          for (const Json& r : value) merged["required"].push_back(r);
        } else if (key == "type") {
          if (value != "object")
            unsupported_.push_back(Truncated(path + "/allOf (of non-object schemas)"));
        } else if (key == "additionalProperties") {
          merged[key] = value;
        } else if (KnownKeywords().count(key) != 0 && key != "title" && key != "description" &&
                   key != "$defs" && key != "definitions" && key != "$schema" && key != "$id") {
          unsupported_.push_back(Truncated(fmt::format("{}/allOf (with '{}')", path, key)));
        }
      }
    }
    return TypedNode("object", merged, path, depth);
  }

  StatusOr<Expr> TypedNode(const std::string& type, const Json& s, const std::string& path,
                           int depth) {
    if (type == "object") return ObjectNode(s, path, depth);
    if (type == "array") return ArrayNode(s, path, depth);
    if (type == "string") return StringNode(s, path);
    if (type == "integer" || type == "number") return NumberNode(s, path, type == "integer");
    if (type == "boolean") return Expr::Alt({Expr::Literal("true"), Expr::Literal("false")});
    if (type == "null") return Expr::Literal("null");
    return InvalidArgumentError("unknown type '{}' at {}", type, Pointer(path));
  }

  StatusOr<Expr> ObjectNode(const Json& s, const std::string& path, int depth) {
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array())
        return InvalidArgumentError("'required' at {} is not an array", Pointer(path));
      for (const Json& r : s["required"]) {
        if (!r.is_string())
          return InvalidArgumentError("'required' at {} has a non-string", Pointer(path));
        required.insert(r.get<std::string>());
      }
    }
    struct Prop {
      Expr kv;
      bool required;
    };
    std::vector<Prop> props;
    if (s.contains("properties")) {
      if (!s["properties"].is_object())
        return InvalidArgumentError("'properties' at {} is not an object", Pointer(path));
      for (const auto& [name, sub] : s["properties"].items()) {
        TS_ASSIGN_OR_RETURN(Expr value,
                            Node(sub, fmt::format("{}/properties/{}", path, name), depth + 1));
        props.push_back(
            {Expr::Seq({Expr::Literal(Json(name).dump()), Expr::Byte(':'), Ws(), value}),
             required.count(name) != 0});
        required.erase(name);
      }
    }
    if (!required.empty()) {
      return InvalidArgumentError("'required' at {} names '{}', which is not in 'properties'",
                                  Pointer(path), *required.begin());
    }
    std::optional<Expr> extra;  // one additional "key": value member
    if (s.contains("additionalProperties") &&
        !(s["additionalProperties"].is_boolean() && !s["additionalProperties"].get<bool>())) {
      TS_ASSIGN_OR_RETURN(int32_t str, StringRule());
      TS_ASSIGN_OR_RETURN(
          Expr value, Node(s["additionalProperties"], path + "/additionalProperties", depth + 1));
      extra = Expr::Seq({Expr::Ref(str), Expr::Byte(':'), Ws(), value});
    }
    // tail[i][emitted]: the members from property i on, given whether one was emitted already.
    // Built back to front; optional members branch, so each tail is a rule to share it.
    Expr tail_emitted = extra ? Expr::Star(Expr::Seq({Sep(), *extra})) : Expr::Empty();
    Expr tail_none = extra ? Expr::Opt(Expr::Seq({*extra, Expr::Star(Expr::Seq({Sep(), *extra}))}))
                           : Expr::Empty();
    // A run of required members is spliced once, when an optional member or the start is
    // reached: extending both tails member by member copied the whole run each time, quadratic
    // (2,000 required properties took 4 s in one step that never looked at the deadline).
    size_t run_end = props.size();  // the run not yet spliced ends here
    auto splice_run = [&](size_t run_begin) {
      if (run_begin == run_end) return;
      std::vector<Expr> emitted, none;
      for (size_t j = run_begin; j < run_end; ++j) {
        if (j != run_begin) none.push_back(Sep());
        none.push_back(props[j].kv);
        emitted.push_back(Sep());
        emitted.push_back(std::move(props[j].kv));
      }
      none.push_back(tail_emitted);
      emitted.push_back(std::move(tail_emitted));
      tail_none = Expr::Seq(std::move(none));
      tail_emitted = Expr::Seq(std::move(emitted));
      run_end = run_begin;
    };
    for (size_t i = props.size(); i-- > 0;) {
      if (props[i].required) continue;
      splice_run(i + 1);
      run_end = i;
      Expr with = Expr::Seq({Sep(), props[i].kv, tail_emitted});
      Expr first = Expr::Seq({props[i].kv, tail_emitted});
      TS_ASSIGN_OR_RETURN(Expr te,
                          Rule(fmt::format("{}#{}e", path, i), Expr::Alt({with, tail_emitted})));
      TS_ASSIGN_OR_RETURN(Expr tn,
                          Rule(fmt::format("{}#{}n", path, i), Expr::Alt({first, tail_none})));
      tail_emitted = std::move(te);
      tail_none = std::move(tn);
    }
    splice_run(0);
    return Expr::Seq({Expr::Byte('{'), tail_none, Expr::Byte('}')});
  }

  StatusOr<int64_t> Count(const Json& s, const char* key, const std::string& path) {
    if (!s.contains(key)) return int64_t{-1};
    if (!s[key].is_number_integer() || s[key].get<int64_t>() < 0) {
      return InvalidArgumentError("'{}' at {} must be a non-negative integer", key, Pointer(path));
    }
    if (s[key].get<int64_t>() > opt_.limits.max_repeat) {
      return InvalidArgumentError("'{}' at {} exceeds the limit {}", key, Pointer(path),
                                  opt_.limits.max_repeat);
    }
    return s[key].get<int64_t>();
  }

  StatusOr<Expr> ArrayNode(const Json& s, const std::string& path, int depth) {
    std::vector<Expr> prefix;
    if (s.contains("prefixItems")) {
      if (!s["prefixItems"].is_array())
        return InvalidArgumentError("'prefixItems' at {} is not an array", Pointer(path));
      for (size_t i = 0; i < s["prefixItems"].size(); ++i) {
        TS_ASSIGN_OR_RETURN(Expr e, Node(s["prefixItems"][i],
                                         fmt::format("{}/prefixItems/{}", path, i), depth + 1));
        prefix.push_back(std::move(e));
      }
    }
    std::optional<Expr> items;
    if (!s.contains("items")) {
      TS_ASSIGN_OR_RETURN(int32_t v, AnyValueRule());
      items = Expr::Ref(v);
    } else if (!(s["items"].is_boolean() && !s["items"].get<bool>())) {
      TS_ASSIGN_OR_RETURN(Expr e, Node(s["items"], path + "/items", depth + 1));
      items = std::move(e);
    }
    TS_ASSIGN_OR_RETURN(int64_t min, Count(s, "minItems", path));
    TS_ASSIGN_OR_RETURN(int64_t max, Count(s, "maxItems", path));
    min = std::max<int64_t>(min, 0);
    const int64_t k = static_cast<int64_t>(prefix.size());
    if (!items) max = max < 0 ? k : std::min(max, k);
    if (max >= 0 && min > max) {
      return InvalidArgumentError("array at {} cannot satisfy minItems/maxItems", Pointer(path));
    }
    // Element j (0-based) is prefix[j] or items; elements beyond max(min, k) repeat `items`.
    const int64_t explicit_n = std::min<int64_t>(std::max(min, k), max < 0 ? INT64_MAX : max);
    auto elem = [&](int64_t j) { return j < k ? prefix[j] : *items; };
    auto sep = [](int64_t j) { return j == 0 ? Expr::Empty() : Sep(); };
    Expr tail = Expr::Empty();
    if (items && (max < 0 || max > explicit_n)) {
      Expr one = Expr::Seq({sep(explicit_n == 0 ? 0 : 1), *items});
      if (explicit_n == 0) {
        Expr rest =
            max < 0 ? Expr::Star(Expr::Seq({Sep(), *items}))
                    : Expr::Repeat(Expr::Seq({Sep(), *items}), 0, static_cast<int32_t>(max - 1));
        tail = Expr::Opt(Expr::Seq({*items, rest}));
      } else {
        tail = max < 0 ? Expr::Star(one)
                       : Expr::Repeat(one, 0, static_cast<int32_t>(max - explicit_n));
      }
    }
    for (int64_t j = explicit_n; j-- > 0;) {
      Expr e = Expr::Seq({sep(j), elem(j), tail});
      tail = j < min ? std::move(e) : Expr::Opt(std::move(e));
    }
    return Expr::Seq({Expr::Byte('['), tail, Expr::Byte(']')});
  }

  StatusOr<Expr> StringNode(const Json& s, const std::string& path) {
    TS_ASSIGN_OR_RETURN(int64_t min, Count(s, "minLength", path));
    TS_ASSIGN_OR_RETURN(int64_t max, Count(s, "maxLength", path));
    bool has_len = min >= 0 || max >= 0;
    if (s.contains("pattern") && (s.contains("format") || has_len)) {
      unsupported_.push_back(
          Truncated(Pointer(path) + " (pattern combined with format or minLength/maxLength)"));
      return Expr::Empty();
    }
    std::string pattern;
    if (s.contains("format")) {
      if (!s["format"].is_string())
        return InvalidArgumentError("'format' at {} is not a string", Pointer(path));
      const std::string f = s["format"].get<std::string>();
      const std::optional<FormatPattern> fp = PatternOfFormat(f);
      if (!fp) {
        unsupported_.push_back(Truncated(path + "/format:" + f));
        return Expr::Empty();
      }
      // Every string of the format has [min_len, max_len] characters: lengths that allow all of
      // them (e.g. an email of at most 254) add nothing; narrower ones would need the two
      // intersected.
      if (has_len) {
        if (min > fp->min_len || (max >= 0 && max < fp->max_len)) {
          unsupported_.push_back(Truncated(
              fmt::format("{} (format {} holds {}-{} characters; minLength/maxLength narrower)",
                          Pointer(path), f, fp->min_len, fp->max_len)));
          return Expr::Empty();
        }
        has_len = false;
      }
      pattern = fp->pattern;
    } else if (s.contains("pattern")) {
      if (!s["pattern"].is_string())
        return InvalidArgumentError("'pattern' at {} is not a string", Pointer(path));
      pattern = s["pattern"].get<std::string>();
    }
    Expr body;
    if (!pattern.empty()) {
      // JSON Schema patterns search; unanchored ends allow any characters.
      const bool start = pattern[0] == '^';
      const bool end =
          pattern.size() >= 2 && pattern.back() == '$' && pattern[pattern.size() - 2] != '\\';
      RegexOptions ro;
      ro.inside_json_string = true;
      ro.max_repeat = opt_.limits.max_repeat;
      auto re = ParseRegex(pattern, ro);
      if (!re.ok()) return re.status().WithPrefix(fmt::format("'pattern' at {}", Pointer(path)));
      body = Expr::Seq({start ? Expr::Empty() : Expr::Star(JsonChar()), *re,
                        end ? Expr::Empty() : Expr::Star(JsonChar())});
    } else if (has_len) {
      body = Expr::Repeat(JsonChar(), static_cast<int32_t>(std::max<int64_t>(min, 0)),
                          static_cast<int32_t>(max));
      if (max >= 0 && max < min)
        return InvalidArgumentError("minLength > maxLength at {}", Pointer(path));
    } else {
      TS_ASSIGN_OR_RETURN(int32_t str, StringRule());
      return Expr::Ref(str);
    }
    return Expr::Seq({Expr::Byte('"'), body, Expr::Byte('"')});
  }

  StatusOr<Expr> NumberNode(const Json& s, const std::string& path, bool integer) {
    TS_ASSIGN_OR_RETURN(NumberBounds bounds, ReadNumberBounds(s, Pointer(path)));
    if (bounds.any()) return NumberInBounds(bounds, integer, Pointer(path));
    if (integer) return AnyJsonInteger();
    TS_ASSIGN_OR_RETURN(int32_t num, b_.AddRule("json_number", AnyJsonNumber()));
    return Expr::Ref(num);
  }

  const Json& root_;
  JsonSchemaOptions opt_;
  GrammarBuilder b_;
  std::map<std::string, int32_t> ref_rules_;
  std::vector<std::string> unsupported_;
  int32_t any_value_ = -1, any_object_ = -1;
  int64_t num_nodes_ = 0;
};

}  // namespace

StatusOr<Grammar> CompileJsonSchema(std::string_view schema_text,
                                    const JsonSchemaOptions& options) {
  if (schema_text.size() > 1000000) return InvalidArgumentError("schema larger than 1000000 bytes");
  TS_RETURN_IF_ERROR(CheckJsonNesting(schema_text, "schema"));
  Json schema = Json::parse(schema_text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return InvalidArgumentError("schema is not valid JSON");
  SchemaCompiler c(schema, options);
  return c.CompileRoot();
}

StatusOr<Grammar> CompileAnyJsonObject(const JsonSchemaOptions& options) {
  const Json empty = Json::object();
  SchemaCompiler c(empty, options);
  return c.CompileAnyObject();
}

}  // namespace tinyserve::structured
