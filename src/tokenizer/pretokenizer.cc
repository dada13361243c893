// Why a hand-written scanner and not PCRE2: the pattern is fixed, and each alternative reduces
// to a test on the class of one or two characters plus a run, so a scanner needs no
// backtracking and handles ASCII with one table lookup per byte. benchmarks/tokenizer_bench.sh
// measures it against PCRE2 (JIT, UCP) on the corpus; pretokenizer_test checks that both split
// every corpus text identically.
#include "tokenizer/pretokenizer.h"

#include <utf8proc.h>

#include <array>
#include <cstdint>

#include "tokenizer/utf8.h"

namespace tinyserve {
namespace {

enum CharClass : uint8_t {
  kOther = 0,    // neither letter, number nor whitespace
  kLetter = 1,   // \p{L}
  kNumber = 2,   // \p{N}
  kSpace = 3,    // \s other than CR and LF
  kNewline = 4,  // \r or \n
};

constexpr std::array<uint8_t, 128> MakeAsciiClasses() {
  std::array<uint8_t, 128> c{};
  for (int i = 'a'; i <= 'z'; ++i) c[i] = kLetter;
  for (int i = 'A'; i <= 'Z'; ++i) c[i] = kLetter;
  for (int i = '0'; i <= '9'; ++i) c[i] = kNumber;
  c['\t'] = c['\v'] = c['\f'] = c[' '] = kSpace;
  c['\r'] = c['\n'] = kNewline;
  return c;
}
constexpr std::array<uint8_t, 128> kAsciiClasses = MakeAsciiClasses();

// Unicode White_Space (what \s means for the tokenizer's regex engine).
bool IsUnicodeSpace(uint32_t cp) {
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

uint8_t ClassOf(uint32_t cp) {
  if (cp < 128) return kAsciiClasses[cp];
  if (IsUnicodeSpace(cp)) return kSpace;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return kNumber;
    default:
      return kOther;
  }
}

// A cursor over the text that classifies one character at a time.
struct Scanner {
  std::string_view text;

  // Class and byte length of the character at `pos` (requires pos < size).
  uint8_t At(size_t pos, size_t* len) const {
    const auto b = static_cast<uint8_t>(text[pos]);
    if (b < 0x80) {
      *len = 1;
      return kAsciiClasses[b];
    }
    size_t n = ValidUtf8SequenceLength(text, pos);
    if (n == 0) n = 1;  // Callers pass valid UTF-8; stay total anyway.
    *len = n;
    return ClassOf(DecodeUtf8(text.data() + pos, n));
  }
  // End of the run of characters starting at `pos` whose class satisfies `pred`.
  template <typename Pred>
  size_t RunEnd(size_t pos, Pred pred) const {
    size_t len = 0;
    while (pos < text.size() && pred(At(pos, &len))) pos += len;
    return pos;
  }
};

bool IsWhitespace(uint8_t c) { return c == kSpace || c == kNewline; }
bool IsPunct(uint8_t c) { return c == kOther; }  // [^\s\p{L}\p{N}]

// Length of a contraction match at `pos` (text[pos] == '\''), or 0.
size_t ContractionLength(std::string_view text, size_t pos) {
  auto lower = [&](size_t i) -> char {
    if (i >= text.size()) return 0;
    const char c = text[i];
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  };
  const char c1 = lower(pos + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  const char c2 = lower(pos + 2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

}  // namespace

void Qwen2Pretokenize(std::string_view text, std::vector<std::string_view>* pieces) {
  const Scanner s{text};
  const size_t n = text.size();
  size_t pos = 0;
  while (pos < n) {
    size_t len = 0;
    const uint8_t cls = s.At(pos, &len);
    const size_t contraction = text[pos] == '\'' ? ContractionLength(text, pos) : 0;
    size_t end = pos + contraction;
    if (contraction == 0) {
      if (cls == kLetter) {
        end = s.RunEnd(pos, [](uint8_t c) { return c == kLetter; });
      } else if (cls == kNumber) {
        end = pos + len;
      } else {
        // [^\r\n\p{L}\p{N}]?\p{L}+ with the optional character present.
        size_t next_len = 0;
        const uint8_t next = pos + len < n ? s.At(pos + len, &next_len) : uint8_t{kNewline};
        if (cls != kNewline && next == kLetter) {
          end = s.RunEnd(pos + len, [](uint8_t c) { return c == kLetter; });
        } else if (cls == kOther || (text[pos] == ' ' && pos + len < n && IsPunct(next))) {
          // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
          const size_t start = cls == kOther ? pos : pos + len;
          end = s.RunEnd(start, IsPunct);
          end = s.RunEnd(end, [](uint8_t c) { return c == kNewline; });
        } else {
          // Whitespace: `\s*[\r\n]+`, then `\s+(?!\S)`, then `\s+`.
          const size_t run_end = s.RunEnd(pos, IsWhitespace);
          size_t last_newline_end = 0;
          for (size_t i = pos; i < run_end;) {
            size_t l = 0;
            if (s.At(i, &l) == kNewline) last_newline_end = i + l;
            i += l;
          }
          if (last_newline_end != 0) {
            end = last_newline_end;
          } else if (run_end == n) {
            end = run_end;
          } else {
            // Give back the last whitespace character unless the run is only one character.
            size_t last_start = pos;
            for (size_t i = pos; i < run_end;) {
              size_t l = 0;
              s.At(i, &l);
              last_start = i;
              i += l;
            }
            end = last_start > pos ? last_start : run_end;
          }
        }
      }
    }
    pieces->push_back(text.substr(pos, end - pos));
    pos = end;
  }
}

}  // namespace tinyserve
