// A small JSON-Schema validator for the bench's structured-output task: it checks the answers a
// server returns against the task's schema. Covers the keywords the workload schemas use (type,
// properties, required, additionalProperties, items, enum, const, minimum/maximum,
// exclusiveMinimum/exclusiveMaximum, minLength/maxLength, minItems/maxItems, anyOf).
// Pure functions; safe from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "util/status.h"

namespace tinyserve::bench {

// OK when `schema` uses only keywords this validator understands (annotations such as title,
// description, $schema and default are allowed and ignored); Unimplemented names the first
// keyword it does not, with its JSON path in the schema. Loaders call it so a user's workload
// cannot silently be checked against a weaker schema than they wrote.
[[nodiscard]] Status CheckSchemaSupported(const nlohmann::json& schema);

// OK when `instance` is valid under `schema`; otherwise InvalidArgument whose message names the
// first failing location ("$.items[2].price: 12 is above maximum 10"). Requires a schema that
// CheckSchemaSupported accepts (unknown keywords are ignored here).
[[nodiscard]] Status ValidateJsonSchema(const nlohmann::json& schema,
                                        const nlohmann::json& instance);

}  // namespace tinyserve::bench
