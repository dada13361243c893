// The field readers of the OpenAI request parser (openai_api.cc, openai_constraints.cc): each
// reads one field of a request body, checks its type and range, and on a bad value throws
// Invalid carrying the 400 that names the field. Internal to the parser: ParseRequest and
// ParseChatPrompt (openai_api.h) catch Invalid and return its error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "server/errors.h"

namespace tinyserve::openai_parse {

using Json = nlohmann::ordered_json;

// Thrown by Fail: keeps the field-by-field checks flat.
struct Invalid {
  ApiError error;
};

// Throws Invalid with a 400 naming `param`.
[[noreturn]] void Fail(std::string param, std::string message);
// The field, or nullptr when it is absent or null.
const Json* Field(const Json& body, const char* name);
bool GetBool(const Json& body, const char* name, bool fallback);
// Finite and within [lo, hi], or nullopt when absent.
std::optional<double> GetNumber(const Json& body, const char* name, double lo, double hi);
std::optional<int64_t> GetInt(const Json& body, const char* name, int64_t lo, int64_t hi);
// "" when absent; at most max_bytes.
std::string GetString(const Json& body, const char* name, size_t max_bytes);
// A string field that must be there, in an object found at `param` (a list item, a block).
std::string RequiredString(const Json& object, const char* name, const std::string& param);
// A list of token ids, each in [0, vocab_size).
std::vector<int32_t> TokenIds(const Json& list, const char* param, int64_t vocab_size);

}  // namespace tinyserve::openai_parse
