// Local `$ref` resolution for the JSON-Schema compiler: JSON pointers ("#", "#/$defs/x",
// "#/definitions/x", any "#/a/0/b" with ~0 ~1 escapes) into the root schema, and $ref chains
// followed to the schema object they name. Remote references are an error. Pure functions of
// their arguments; any thread. The compiler itself turns each distinct $ref into one grammar
// rule (so recursive schemas are recursive rules) and counts a $ref as one level of depth.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "util/status.h"

namespace tinyserve::structured {

// The schema that `ref` ("#" or "#/...") names within `root`; an error when it does not resolve
// or is not local.
[[nodiscard]] StatusOr<const nlohmann::ordered_json*> ResolveJsonPointer(
    const nlohmann::ordered_json& root, const std::string& ref);

// `s` itself, or the schema its $ref chain ends at (at most 33 hops: longer chains are an error).
[[nodiscard]] StatusOr<const nlohmann::ordered_json*> ResolveRefChain(
    const nlohmann::ordered_json& root, const nlohmann::ordered_json& s);

}  // namespace tinyserve::structured
