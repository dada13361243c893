#include "tokenizer/pretokenizer_pcre2.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

#include "tokenizer/pretokenizer.h"

namespace tinyserve {

StatusOr<std::unique_ptr<Pcre2Pretokenizer>> Pcre2Pretokenizer::Create() {
  // PCRE2's \s under UCP is not Unicode White_Space (it lacks U+0085), so the pattern spells
  // the class out; everything else is the tokenizer.json pattern verbatim.
  std::string pattern(kQwen2PretokenizerRegex);
  const std::string space =
      "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}"
      "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
  std::string expanded;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern.compare(i, 2, "\\s") == 0) {
      // Inside a class ("[^\s...]") insert the members; outside, a class of them.
      const bool in_class = pattern.rfind('[', i) != std::string::npos &&
                            pattern.rfind('[', i) > pattern.rfind(']', i == 0 ? 0 : i - 1);
      expanded += in_class ? space : "[" + space + "]";
      ++i;
    } else if (pattern.compare(i, 2, "\\S") == 0) {
      expanded += "[^" + space + "]";
      ++i;
    } else {
      expanded.push_back(pattern[i]);
    }
  }
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(expanded.data()), expanded.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  if (code == nullptr) return InternalError("PCRE2 compile error {} at {}", error, offset);
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if unavailable
  std::unique_ptr<Pcre2Pretokenizer> p(new Pcre2Pretokenizer());
  p->code_ = code;
  return p;
}

Pcre2Pretokenizer::~Pcre2Pretokenizer() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Pcre2Pretokenizer::Split(std::string_view text, std::vector<std::string_view>* pieces) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;  // cannot happen: the last alternatives match any character
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[0] > pos) pieces->push_back(text.substr(pos, ov[0] - pos));
    if (ov[1] == ov[0]) break;
    pieces->push_back(text.substr(ov[0], ov[1] - ov[0]));
    pos = ov[1];
  }
  if (pos < text.size()) pieces->push_back(text.substr(pos));
  pcre2_match_data_free(md);
}

}  // namespace tinyserve
