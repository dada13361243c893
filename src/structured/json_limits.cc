#include "structured/json_limits.h"

#include <algorithm>

namespace tinyserve::structured {

int32_t JsonNestingDepth(std::string_view text) {
  int32_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

Status CheckJsonNesting(std::string_view text, std::string_view what, int32_t max_depth) {
  if (JsonNestingDepth(text) > max_depth) {
    return InvalidArgumentError("{} nests deeper than {} levels", what, max_depth);
  }
  return OkStatus();
}

}  // namespace tinyserve::structured
