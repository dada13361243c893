// Oracle helper for tests/reference/test_bench_schema_validator.py: reads a JSON array of
// {"schema": ..., "instance": ...} cases from stdin and prints a JSON array of verdicts
// (true = valid) from tinyserve's bench JSON-Schema validator, plus whether each schema is
// supported. Exit 1 on unreadable input.
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "bench/json_schema.h"

int main() {
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  nlohmann::json cases = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (cases.is_discarded() || !cases.is_array()) {
    std::cerr << "expected a JSON array of {schema, instance}\n";
    return 1;
  }
  nlohmann::json out = nlohmann::json::array();
  for (const nlohmann::json& c : cases) {
    const nlohmann::json& schema = c.at("schema");
    out.push_back({{"valid", tinyserve::bench::ValidateJsonSchema(schema, c.at("instance")).ok()},
                   {"supported", tinyserve::bench::CheckSchemaSupported(schema).ok()}});
  }
  std::cout << out.dump() << "\n";
  return 0;
}
