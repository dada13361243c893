// Untrusted JSON text parsed with bounds, so that no later recursive walk (copy, dump,
// PythonToJson, the JSON-Schema compiler) ever meets deep input: nesting deeper than
// `max_depth` and duplicate object keys are rejected while parsing (nlohmann's parser itself is
// iterative; the limit is checked by its callback). Used for every request body the server
// reads and for tool-call `arguments` strings re-parsed by the chat template. Any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "util/status.h"

namespace tinyserve {

// Containers (objects and arrays) nested deeper than this are refused.
inline constexpr int kMaxJsonDepth = 64;

// InvalidArgument for malformed JSON (without the parser's internal text); OutOfRange for
// nesting deeper than `max_depth` or a key given twice in one object. On OutOfRange,
// `top_level_key` (if given) names the top-level object's member where it was found.
[[nodiscard]] StatusOr<nlohmann::ordered_json> ParseUntrustedJson(
    std::string_view text, int max_depth = kMaxJsonDepth, std::string* top_level_key = nullptr);

}  // namespace tinyserve
