// JSON numbers as grammar expressions for the JSON-Schema compiler: any number, any integer,
// and the numerals within a schema's minimum / maximum bounds (integer ranges exact; number
// ranges: integers in range and fractions whose whole interval (k, k+1) lies in range, no
// exponent). Pure functions; any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "structured/grammar.h"
#include "util/status.h"

namespace tinyserve::structured {

// minimum / maximum / exclusiveMinimum / exclusiveMaximum of one schema (the tightest of each).
struct NumberBounds {
  std::optional<double> lo, hi;
  bool lo_excl = false, hi_excl = false;
  bool any() const { return lo.has_value() || hi.has_value(); }
};

// Reads the bound keywords of `s`; `where` names the schema in errors (a bound not a number).
[[nodiscard]] StatusOr<NumberBounds> ReadNumberBounds(const nlohmann::ordered_json& s,
                                                      const std::string& where);
// Any JSON number / any JSON integer.
Expr AnyJsonNumber();
Expr AnyJsonInteger();
// The numerals within `bounds` (integers only when `integer`); an error when none are.
[[nodiscard]] StatusOr<Expr> NumberInBounds(const NumberBounds& bounds, bool integer,
                                            const std::string& where);

}  // namespace tinyserve::structured
