// Nesting checks for untrusted JSON text, run before nlohmann::json parses it: the parser is
// iterative, but copying, comparing and dump() of the parsed value recurse once per level, so a
// deeply nested document (a schema's "const", a tool's "parameters", a tool call's arguments)
// would overflow the stack later. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string_view>

#include "util/status.h"

namespace tinyserve::structured {

// Nesting the structured module accepts in JSON it parses (schemas need about two levels per
// schema level: "properties" then the property's schema).
inline constexpr int32_t kMaxJsonNesting = 128;

// Deepest array/object nesting of `text` (brackets inside strings ignored), scanning once
// without recursion. Malformed text is measured as far as it goes; the parser rejects it later.
int32_t JsonNestingDepth(std::string_view text);

// InvalidArgument naming `what` when `text` nests deeper than `max_depth`.
[[nodiscard]] Status CheckJsonNesting(std::string_view text, std::string_view what,
                                      int32_t max_depth = kMaxJsonNesting);

}  // namespace tinyserve::structured
