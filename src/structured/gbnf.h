// llama.cpp's GBNF grammar syntax compiled into a GrammarBuilder. Pure; any thread.
//   root ::= "{" ws pair ("," ws pair)* "}"      # comments
// Rules `name ::= body`; bodies use "literals" (escapes \n \t \r \\ \" \xHH \uHHHH \UHHHHHHHH),
// [classes] and [^classes], '.', rule names, ( groups ), '|', and * + ? {m} {m,} {m,n}.
// The start rule is `root`. Left recursion is an error (as in llama.cpp).
#pragma once

#include <string_view>

#include "structured/grammar.h"
#include "util/status.h"

namespace tinyserve::structured {

[[nodiscard]] StatusOr<Grammar> CompileGbnf(std::string_view text, const GrammarLimits& limits);

}  // namespace tinyserve::structured
