#include "structured/regex.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "structured/pattern_text.h"

namespace tinyserve::structured {
namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

Ranges Digits() { return {{'0', '9'}}; }
Ranges Word() { return {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}; }
Ranges Space() { return {{'\t', '\r'}, {' ', ' '}}; }

Ranges Negate(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  uint32_t next = 0;
  for (auto [lo, hi] : r) {
    if (lo > next) out.push_back({next, lo - 1});
    next = std::max(next, hi + 1);
  }
  if (next <= 0x10FFFF) out.push_back({next, 0x10FFFF});
  return out;
}

Ranges Subtract(const Ranges& a, const Ranges& b) {
  Ranges keep = Negate(b), out;
  for (auto [alo, ahi] : a) {
    for (auto [klo, khi] : keep) {
      const uint32_t lo = std::max(alo, klo), hi = std::min(ahi, khi);
      if (lo <= hi) out.push_back({lo, hi});
    }
  }
  return out;
}

class RegexParser {
 public:
  static constexpr int kMaxQuantifiers = 8;

  RegexParser(std::string_view p, const RegexOptions& o) : p_(p), opt_(o) {}

  StatusOr<Expr> Parse() {
    if (!p_.empty() && p_[0] == '^') ++pos_;
    TS_ASSIGN_OR_RETURN(Expr e, ParseAlt(0));
    if (pos_ < p_.size()) return Error("unbalanced ')'");
    return e;
  }

 private:
  Status Error(std::string_view what) const {
    return InvalidArgumentError("regex error at offset {}: {}", pos_, what);
  }
  bool AtEnd() const { return pos_ >= p_.size(); }

  StatusOr<Expr> ParseAlt(int depth) {
    if (depth > opt_.max_nesting) return Error("groups nested too deeply");
    std::vector<Expr> alts;
    for (;;) {
      TS_ASSIGN_OR_RETURN(Expr s, ParseSeq(depth));
      alts.push_back(std::move(s));
      if (AtEnd() || p_[pos_] != '|') break;
      ++pos_;
    }
    return Expr::Alt(std::move(alts));
  }

  StatusOr<Expr> ParseSeq(int depth) {
    std::vector<Expr> items;
    while (!AtEnd() && p_[pos_] != '|' && p_[pos_] != ')') {
      if (p_[pos_] == '$') {
        ++pos_;
        if (!AtEnd() && p_[pos_] != ')' && p_[pos_] != '|') return Error("'$' only at the end");
        continue;
      }
      if (p_[pos_] == '^') return Error("'^' only at the start");
      TS_ASSIGN_OR_RETURN(Expr atom, ParseAtom(depth));
      TS_ASSIGN_OR_RETURN(atom, ParseQuantifiers(std::move(atom)));
      items.push_back(std::move(atom));
    }
    return Expr::Seq(std::move(items));
  }

  StatusOr<int32_t> ParseInt() {
    const size_t start = pos_;
    int64_t v = 0;
    while (!AtEnd() && p_[pos_] >= '0' && p_[pos_] <= '9') {
      v = v * 10 + (p_[pos_++] - '0');
      if (v > opt_.max_repeat) return Error("repetition count too large");
    }
    if (pos_ == start) return Error("expected a number in {}");
    return static_cast<int32_t>(v);
  }

  StatusOr<Expr> ParseQuantifiers(Expr atom) {
    for (int count = 0; !AtEnd(); ++count) {
      const char c = p_[pos_];
      // Each quantifier wraps the atom once more: 99,990 of them would nest the tree that deep.
      if (count == kMaxQuantifiers && (c == '*' || c == '+' || c == '?' || c == '{')) {
        return Error(fmt::format("more than {} quantifiers on one item", kMaxQuantifiers));
      }
      int32_t min = 0, max = -1;
      if (c == '*') {
        ++pos_;
      } else if (c == '+') {
        min = 1, ++pos_;
      } else if (c == '?') {
        max = 1, ++pos_;
      } else if (c == '{') {
        ++pos_;
        TS_ASSIGN_OR_RETURN(min, ParseInt());
        max = min;
        if (!AtEnd() && p_[pos_] == ',') {
          ++pos_;
          if (!AtEnd() && p_[pos_] == '}') {
            max = -1;
          } else {
            TS_ASSIGN_OR_RETURN(max, ParseInt());
          }
        }
        if (AtEnd() || p_[pos_] != '}') return Error("unterminated {m,n}");
        ++pos_;
        if (max >= 0 && max < min) return Error("{m,n} with n < m");
      } else {
        break;
      }
      if (!AtEnd() && p_[pos_] == '?') ++pos_;  // lazy: same language
      if (!AtEnd() && p_[pos_] == '+') return Error("possessive quantifiers are not supported");
      atom = Expr::Repeat(std::move(atom), min, max);
    }
    return atom;
  }

  StatusOr<uint32_t> ParseCodePoint() {
    const std::optional<uint32_t> cp = ReadCodePoint(p_, &pos_);
    if (!cp) return Error("invalid UTF-8");
    return *cp;
  }

  StatusOr<uint32_t> ParseHex(int digits) {
    const std::optional<uint32_t> v = ReadHexDigits(p_, &pos_, digits);
    if (!v) return Error("bad hex escape");
    return *v;
  }

  // After '\': a class (returned in *cls) or one code point.
  StatusOr<uint32_t> ParseEscape(Ranges* cls, bool* is_class) {
    if (AtEnd()) return Error("trailing backslash");
    const char c = p_[pos_++];
    *is_class = true;
    switch (c) {
      case 'd':
        *cls = Digits();
        return 0u;
      case 'D':
        *cls = Negate(Digits());
        return 0u;
      case 'w':
        *cls = Word();
        return 0u;
      case 'W':
        *cls = Negate(Word());
        return 0u;
      case 's':
        *cls = Space();
        return 0u;
      case 'S':
        *cls = Negate(Space());
        return 0u;
      default:
        break;
    }
    *is_class = false;
    switch (c) {
      case 'n':
        return uint32_t{'\n'};
      case 't':
        return uint32_t{'\t'};
      case 'r':
        return uint32_t{'\r'};
      case 'f':
        return uint32_t{'\f'};
      case 'v':
        return uint32_t{'\v'};
      case '0':
        return 0u;
      case 'x':
        return ParseHex(2);
      case 'u':
        return ParseHex(4);
      default:
        break;
    }
    if (std::isalnum(static_cast<unsigned char>(c))) {
      return Error(fmt::format("unsupported escape \\{}", c));
    }
    --pos_;
    return ParseCodePoint();
  }

  Expr Chars(Ranges r) const {
    if (opt_.inside_json_string) r = Subtract(r, {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}});
    return Expr::CodePoints(r);
  }

  Expr Char(uint32_t cp) const {
    if (opt_.inside_json_string) {
      if (cp == '"' || cp == '\\') return Expr::Literal(std::string("\\") + static_cast<char>(cp));
      if (cp == '\n') return Expr::Literal("\\n");
      if (cp == '\t') return Expr::Literal("\\t");
      if (cp == '\r') return Expr::Literal("\\r");
      if (cp < 0x20) return Expr::Literal(fmt::format("\\u{:04x}", cp));
    }
    return Expr::CodePoints({{cp, cp}});
  }

  StatusOr<Expr> ParseClass() {
    bool negated = false;
    if (!AtEnd() && p_[pos_] == '^') negated = true, ++pos_;
    Ranges r;
    bool first = true;
    while (!AtEnd() && (p_[pos_] != ']' || first)) {
      first = false;
      uint32_t lo;
      if (p_[pos_] == '\\') {
        ++pos_;
        Ranges cls;
        bool is_class;
        TS_ASSIGN_OR_RETURN(lo, ParseEscape(&cls, &is_class));
        if (is_class) {
          r.insert(r.end(), cls.begin(), cls.end());
          continue;
        }
      } else if (p_[pos_] == '[' && pos_ + 1 < p_.size() && p_[pos_ + 1] == ':') {
        return Error("POSIX classes are not supported");
      } else {
        TS_ASSIGN_OR_RETURN(lo, ParseCodePoint());
      }
      uint32_t hi = lo;
      if (pos_ + 1 < p_.size() && p_[pos_] == '-' && p_[pos_ + 1] != ']') {
        ++pos_;
        if (p_[pos_] == '\\') {
          ++pos_;
          Ranges cls;
          bool is_class;
          TS_ASSIGN_OR_RETURN(hi, ParseEscape(&cls, &is_class));
          if (is_class) return Error("class escape as a range end");
        } else {
          TS_ASSIGN_OR_RETURN(hi, ParseCodePoint());
        }
        if (hi < lo) return Error("range out of order");
      }
      r.push_back({lo, hi});
    }
    if (AtEnd()) return Error("unterminated character class");
    ++pos_;
    return Chars(negated ? Negate(r) : r);
  }

  StatusOr<Expr> ParseAtom(int depth) {
    const char c = p_[pos_];
    if (c == '(') {
      ++pos_;
      if (!AtEnd() && p_[pos_] == '?') {
        ++pos_;
        if (!AtEnd() && p_[pos_] == ':') {
          ++pos_;
        } else if (!AtEnd() && (p_[pos_] == 'P' || p_[pos_] == '<') &&
                   !(p_[pos_] == '<' && pos_ + 1 < p_.size() &&
                     (p_[pos_ + 1] == '=' || p_[pos_ + 1] == '!'))) {
          if (p_[pos_] == 'P') ++pos_;
          if (AtEnd() || p_[pos_] != '<') return Error("bad group name");
          const size_t close = p_.find('>', pos_);
          if (close == std::string_view::npos) return Error("bad group name");
          pos_ = close + 1;
        } else {
          return Error("lookaround, inline flags and conditionals are not supported");
        }
      }
      TS_ASSIGN_OR_RETURN(Expr e, ParseAlt(depth + 1));
      if (AtEnd() || p_[pos_] != ')') return Error("missing ')'");
      ++pos_;
      return e;
    }
    if (c == '[') {
      ++pos_;
      return ParseClass();
    }
    if (c == '.') {
      ++pos_;
      return Chars(Negate({{'\n', '\n'}}));
    }
    if (c == '*' || c == '+' || c == '?' || c == '{') return Error("quantifier without a target");
    if (c == '\\') {
      ++pos_;
      if (!AtEnd() &&
          (p_[pos_] == 'b' || p_[pos_] == 'B' || (p_[pos_] >= '1' && p_[pos_] <= '9'))) {
        return Error("word boundaries and backreferences are not supported");
      }
      Ranges cls;
      bool is_class;
      TS_ASSIGN_OR_RETURN(uint32_t cp, ParseEscape(&cls, &is_class));
      if (is_class) return Chars(cls);
      return Char(cp);
    }
    TS_ASSIGN_OR_RETURN(uint32_t cp, ParseCodePoint());
    return Char(cp);
  }

  std::string_view p_;
  RegexOptions opt_;
  size_t pos_ = 0;
};

}  // namespace

StatusOr<Expr> ParseRegex(std::string_view pattern, const RegexOptions& options) {
  if (pattern.size() > 100000) return InvalidArgumentError("regex longer than 100000 bytes");
  return RegexParser(pattern, options).Parse();
}

}  // namespace tinyserve::structured
