// Untrusted JSON text parsed with bounds, so that no later recursive walk (copy, dump,
// PythonToJson, the JSON-Schema compiler) ever meets deep input: nesting deeper than
// `max_depth` and duplicate object keys are rejected while parsing (nlohmann's parser itself is
// iterative; the limit is checked by its callback). Objects are capped at kMaxJsonObjectMembers
// members: nlohmann's ordered_json finds each new key by a linear scan of the object, so a 4 MB
// body of one flat object (~400,000 keys) would cost over a minute of CPU to parse. Used for every
// request body the server reads and for tool-call `arguments` strings re-parsed by the chat
// template. The strings, objects and arrays of one text are capped at kMaxJsonHeapValues: each
// takes a heap block besides its slot in its parent (~64-100 bytes), so `["","",...]` or
// `[[],[],...]` would hold ~20x its body while it is parsed. Any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "util/status.h"

namespace tinyserve {

// Containers (objects and arrays) nested deeper than this are refused.
inline constexpr int kMaxJsonDepth = 64;
// Members one object may have (the largest the API accepts is a 1024-entry logit_bias), so
// storing a key costs at most this many comparisons.
inline constexpr size_t kMaxJsonObjectMembers = 1024;
// Strings, objects and arrays one text may hold: a few MiB of heap at most, where real requests
// hold hundreds to thousands (128 tools with their schemas, 64 prompts, a long conversation).
// Numbers and literals live in their parent's slot and are bounded by the body size.
inline constexpr size_t kMaxJsonHeapValues = size_t{1} << 16;

// InvalidArgument for malformed JSON (without the parser's internal text); OutOfRange for
// nesting deeper than `max_depth`, a key given twice in one object or an object of more than
// kMaxJsonObjectMembers members, more than kMaxJsonHeapValues strings, objects and arrays in
// all. On OutOfRange, `top_level_key` (if given) names the top-level
// object's member where it was found ("" when the top-level object itself is too wide).
[[nodiscard]] StatusOr<nlohmann::ordered_json> ParseUntrustedJson(
    std::string_view text, int max_depth = kMaxJsonDepth, std::string* top_level_key = nullptr);

}  // namespace tinyserve
