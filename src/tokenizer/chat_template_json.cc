#include "tokenizer/chat_template_json.h"

#include <set>
#include <string>
#include <vector>

namespace tinyserve {
namespace {

using Json = nlohmann::ordered_json;

// Thrown by the parser callback to stop at the first violation.
struct Refused {
  std::string why;
};

}  // namespace

StatusOr<Json> ParseUntrustedJson(std::string_view text, int max_depth,
                                  std::string* top_level_key) {
  std::string top_key;
  // Keys seen in each open object (innermost last); bounded by max_depth entries.
  std::vector<std::set<std::string, std::less<>>> keys;
  size_t heap_values = 0;
  auto count_heap_value = [&] {
    if (++heap_values > kMaxJsonHeapValues)
      throw Refused{"JSON with more than " + std::to_string(kMaxJsonHeapValues) +
                    " strings, objects and arrays"};
  };
  auto check = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        count_heap_value();
        // `depth` counts the containers already open around this one.
        if (depth >= max_depth)
          throw Refused{"JSON nested deeper than " + std::to_string(max_depth) + " levels"};
        if (event == Json::parse_event_t::object_start) keys.emplace_back();
        break;
      case Json::parse_event_t::key:
        // Checked before the parser stores the key, which scans the object's keys so far.
        if (keys.back().size() >= kMaxJsonObjectMembers) {
          if (depth == 1) top_key.clear();  // the body itself is too wide, not one member
          throw Refused{"JSON object with more than " + std::to_string(kMaxJsonObjectMembers) +
                        " members"};
        }
        if (depth == 1) top_key = parsed.get<std::string>();
        if (!keys.back().insert(parsed.get<std::string>()).second)
          throw Refused{"duplicate key '" + parsed.get<std::string>().substr(0, 64) +
                        "' in a JSON object"};
        break;
      case Json::parse_event_t::object_end:
        keys.pop_back();
        break;
      case Json::parse_event_t::value:
        if (parsed.is_string()) count_heap_value();
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return Json::parse(text, check, /*allow_exceptions=*/true);
  } catch (const Refused& r) {
    if (top_level_key != nullptr) *top_level_key = top_key;
    return OutOfRangeError("{}", r.why);
  } catch (const Json::exception&) {
    return InvalidArgumentError("not valid JSON");
  }
}

}  // namespace tinyserve
