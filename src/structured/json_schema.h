// JSON Schema (and "any JSON object") compiled to a Grammar. Pure; any thread.
//
// Output form: compact JSON with an optional single space after ':' and ',' (bounded
// whitespace), properties in schema order. Supported keywords: type (incl. unions), properties,
// required, additionalProperties (absent means false, as in strict mode), enum, const, items,
// prefixItems, minItems, maxItems, anyOf, oneOf (as anyOf: overlapping branches are not
// excluded), allOf of object schemas, $ref to "#", "#/$defs/..", "#/definitions/.." (recursion
// allowed), minLength, maxLength, pattern, format (date, time, date-time, email, uuid, ipv4),
// minimum, maximum, exclusiveMinimum, exclusiveMaximum; annotations (title, description, ...)
// are ignored. Integer ranges are exact. Number ranges: integers in range, and fractions whose
// whole interval (k, k+1) lies in range, no exponent (values near non-integer bounds missing).
// Any other keyword is an error that lists it.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "structured/grammar.h"
#include "util/status.h"

namespace tinyserve::structured {

struct JsonSchemaOptions {
  GrammarLimits limits;
  int32_t max_depth = 32;  // nesting of schema objects
  int32_t max_schema_nodes = 10000;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // The grammar is wrap_prefix VALUE wrap_suffix, repeated 1..wrap_max_count times joined by
  // wrap_separator (tool calls: "<tool_call>\n" VALUE "\n</tool_call>").
  std::string wrap_prefix, wrap_suffix, wrap_separator;
  int32_t wrap_max_count = 1;
};

[[nodiscard]] StatusOr<Grammar> CompileJsonSchema(std::string_view schema_text,
                                                  const JsonSchemaOptions& options = {});
// Any JSON object (response_format json_object).
[[nodiscard]] StatusOr<Grammar> CompileAnyJsonObject(const JsonSchemaOptions& options = {});

}  // namespace tinyserve::structured
