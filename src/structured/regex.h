// Regular expressions (a safe subset of Python/ECMAScript syntax) compiled to a grammar Expr:
// an automaton, so matching never backtracks. Pure functions; any thread.
//
// Supported: literals (UTF-8), escapes (\d \w \s and negations, \n \t \r \f \v \0 \xHH \uHHHH,
// escaped punctuation), classes [...] / [^...] with ranges, '.', groups (...) (?:...)
// (?P<name>...) (?<name>...), '|', quantifiers * + ? {m} {m,} {m,n} (a trailing lazy '?' is
// ignored: it changes which match, not whether). '^' and '$' only at the ends (matching is
// always of the whole string). Backreferences, lookaround, \b and inline flags are errors.
#pragma once

#include <string_view>

#include "structured/grammar.h"
#include "util/status.h"

namespace tinyserve::structured {

struct RegexOptions {
  // The match is emitted inside a JSON string: '"', '\' and control characters of the pattern
  // are written escaped, and classes never produce them raw.
  bool inside_json_string = false;
  int32_t max_nesting = 64;
  int32_t max_repeat = 1000;
};

[[nodiscard]] StatusOr<Expr> ParseRegex(std::string_view pattern, const RegexOptions& options = {});

}  // namespace tinyserve::structured
