#include "structured/json_schema_ref.h"

namespace tinyserve::structured {

using Json = nlohmann::ordered_json;

StatusOr<const Json*> ResolveJsonPointer(const Json& root, const std::string& ref) {
  if (ref == "#") return &root;
  if (ref.rfind("#/", 0) != 0) {
    return InvalidArgumentError("only local '$ref' (#/...) is supported, got '{}'", ref);
  }
  const Json* target = &root;
  size_t pos = 2;
  while (pos <= ref.size()) {
    size_t end = ref.find('/', pos);
    if (end == std::string::npos) end = ref.size();
    std::string token = ref.substr(pos, end - pos);
    for (size_t i; (i = token.find("~1")) != std::string::npos;) token.replace(i, 2, "/");
    for (size_t i; (i = token.find("~0")) != std::string::npos;) token.replace(i, 2, "~");
    if (target->is_object() && target->contains(token)) {
      target = &(*target)[token];
    } else if (target->is_array() && !token.empty() && token.size() < 9 &&
               token.find_first_not_of("0123456789") == std::string::npos &&
               std::stoul(token) < target->size()) {
      target = &(*target)[std::stoul(token)];
    } else {
      return InvalidArgumentError("'$ref' '{}' does not resolve", ref);
    }
    pos = end + 1;
  }
  return target;
}

StatusOr<const Json*> ResolveRefChain(const Json& root, const Json& s) {
  const Json* cur = &s;
  for (int hops = 0; cur->is_object() && cur->contains("$ref"); ++hops) {
    if (hops > 32) return InvalidArgumentError("'$ref' chain too long");
    const Json& r = (*cur)["$ref"];
    if (!r.is_string()) return InvalidArgumentError("'$ref' is not a string");
    TS_ASSIGN_OR_RETURN(const Json* target, ResolveJsonPointer(root, r.get<std::string>()));
    cur = target;
  }
  return cur;
}

}  // namespace tinyserve::structured
