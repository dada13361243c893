#include "structured/gbnf.h"

#include <cctype>
#include <cstring>
#include <map>
#include <optional>
#include <string>

#include "structured/pattern_text.h"

namespace tinyserve::structured {
namespace {

class GbnfParser {
 public:
  static constexpr int kMaxPostfix = 8;

  GbnfParser(std::string_view text, GrammarBuilder* b) : t_(text), b_(b) {}

  StatusOr<Grammar> Parse() {
    SkipSpace();
    while (!AtEnd()) {
      const std::string name = ParseName();
      if (name.empty()) return Error("expected a rule name");
      SkipSpace();
      if (t_.substr(pos_, 3) != "::=") return Error("expected '::='");
      pos_ += 3;
      TS_ASSIGN_OR_RETURN(int32_t id, RuleId(name));
      if (defined_.count(name) != 0) return Error(fmt::format("rule '{}' defined twice", name));
      defined_[name] = true;
      TS_ASSIGN_OR_RETURN(Expr body, ParseAlt(0));
      TS_RETURN_IF_ERROR(b_->DefineRule(id, body));
      SkipSpace();
    }
    auto root = ids_.find("root");
    if (root == ids_.end() || defined_.count("root") == 0) {
      return InvalidArgumentError("grammar has no 'root' rule");
    }
    for (const auto& [name, id] : ids_) {
      if (defined_.count(name) == 0) return InvalidArgumentError("undefined rule '{}'", name);
    }
    return b_->Finish(root->second);
  }

 private:
  Status Error(std::string_view what) const {
    return InvalidArgumentError("grammar error at offset {}: {}", pos_, what);
  }
  bool AtEnd() const { return pos_ >= t_.size(); }
  void SkipSpace() {
    while (!AtEnd()) {
      if (t_[pos_] == '#') {
        while (!AtEnd() && t_[pos_] != '\n') ++pos_;
      } else if (std::isspace(static_cast<unsigned char>(t_[pos_]))) {
        ++pos_;
      } else {
        break;
      }
    }
  }
  static bool IsNameChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  }
  std::string ParseName() {
    const size_t start = pos_;
    while (!AtEnd() && IsNameChar(t_[pos_])) ++pos_;
    return std::string(t_.substr(start, pos_ - start));
  }
  // True when the text at pos_ starts a new rule ("name ::=").
  bool AtRuleStart() const {
    size_t p = pos_;
    while (p < t_.size() && IsNameChar(t_[p])) ++p;
    if (p == pos_) return false;
    while (p < t_.size() && std::isspace(static_cast<unsigned char>(t_[p]))) ++p;
    return t_.substr(p, 3) == "::=";
  }
  StatusOr<int32_t> RuleId(const std::string& name) {
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    TS_ASSIGN_OR_RETURN(int32_t id, b_->DeclareRule(name));
    ids_[name] = id;
    return id;
  }

  StatusOr<Expr> ParseAlt(int depth) {
    if (depth > 64) return Error("groups nested too deeply");
    std::vector<Expr> alts;
    for (;;) {
      TS_ASSIGN_OR_RETURN(Expr s, ParseSeq(depth));
      alts.push_back(std::move(s));
      SkipSpace();
      if (AtEnd() || t_[pos_] != '|') break;
      ++pos_;
    }
    return Expr::Alt(std::move(alts));
  }

  StatusOr<Expr> ParseSeq(int depth) {
    std::vector<Expr> items;
    for (;;) {
      SkipSpace();
      if (AtEnd() || t_[pos_] == '|' || t_[pos_] == ')') break;
      if (depth == 0 && AtRuleStart()) break;
      TS_ASSIGN_OR_RETURN(Expr atom, ParseAtom(depth));
      TS_ASSIGN_OR_RETURN(atom, ParsePostfix(std::move(atom)));
      items.push_back(std::move(atom));
    }
    return Expr::Seq(std::move(items));
  }

  StatusOr<int32_t> ParseInt() {
    const size_t start = pos_;
    int64_t v = 0;
    while (!AtEnd() && std::isdigit(static_cast<unsigned char>(t_[pos_]))) {
      v = v * 10 + (t_[pos_++] - '0');
      if (v > 10000) return Error("repetition count too large");
    }
    if (start == pos_) return Error("expected a number");
    return static_cast<int32_t>(v);
  }

  StatusOr<Expr> ParsePostfix(Expr atom) {
    for (int count = 0;; ++count) {
      // Postfix operators bind to the previous item without intervening whitespace rules.
      if (AtEnd()) return atom;
      // Each operator wraps the item once more: 200,000 of them would nest the tree that deep.
      if (count == kMaxPostfix && std::strchr("*+?{", t_[pos_]) != nullptr) {
        return Error(fmt::format("more than {} repetition operators on one item", kMaxPostfix));
      }
      const char c = t_[pos_];
      if (c == '*') {
        ++pos_, atom = Expr::Star(std::move(atom));
      } else if (c == '+') {
        ++pos_, atom = Expr::Plus(std::move(atom));
      } else if (c == '?') {
        ++pos_, atom = Expr::Opt(std::move(atom));
      } else if (c == '{') {
        ++pos_;
        SkipSpace();
        TS_ASSIGN_OR_RETURN(int32_t min, ParseInt());
        int32_t max = min;
        SkipSpace();
        if (!AtEnd() && t_[pos_] == ',') {
          ++pos_;
          SkipSpace();
          if (!AtEnd() && t_[pos_] == '}') {
            max = -1;
          } else {
            TS_ASSIGN_OR_RETURN(max, ParseInt());
          }
          SkipSpace();
        }
        if (AtEnd() || t_[pos_] != '}') return Error("unterminated {m,n}");
        ++pos_;
        if (max >= 0 && max < min) return Error("{m,n} with n < m");
        atom = Expr::Repeat(std::move(atom), min, max);
      } else {
        return atom;
      }
    }
  }

  StatusOr<uint32_t> ParseHex(int n) {
    const std::optional<uint32_t> v = ReadHexDigits(t_, &pos_, n);
    if (!v) return Error("bad hex escape");
    return *v;
  }

  // One (possibly escaped) code point inside a literal or class.
  StatusOr<uint32_t> ParseChar() {
    if (AtEnd()) return Error("unexpected end");
    if (t_[pos_] == '\\') {
      ++pos_;
      if (AtEnd()) return Error("trailing backslash");
      const char c = t_[pos_++];
      switch (c) {
        case 'n':
          return uint32_t{'\n'};
        case 't':
          return uint32_t{'\t'};
        case 'r':
          return uint32_t{'\r'};
        case 'x':
          return ParseHex(2);
        case 'u':
          return ParseHex(4);
        case 'U':
          return ParseHex(8);
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
        case '^':
        case '\'':
          return static_cast<uint32_t>(c);
        default:
          return Error(fmt::format("unknown escape \\{}", c));
      }
    }
    const std::optional<uint32_t> cp = ReadCodePoint(t_, &pos_);
    if (!cp) return Error("invalid UTF-8");
    return *cp;
  }

  StatusOr<Expr> ParseAtom(int depth) {
    const char c = t_[pos_];
    if (c == '"') {
      ++pos_;
      std::vector<Expr> chars;
      while (!AtEnd() && t_[pos_] != '"') {
        TS_ASSIGN_OR_RETURN(uint32_t cp, ParseChar());
        chars.push_back(Expr::CodePoints({{cp, cp}}));
      }
      if (AtEnd()) return Error("unterminated literal");
      ++pos_;
      return Expr::Seq(std::move(chars));
    }
    if (c == '[') {
      ++pos_;
      bool negated = false;
      if (!AtEnd() && t_[pos_] == '^') negated = true, ++pos_;
      std::vector<std::pair<uint32_t, uint32_t>> ranges;
      while (!AtEnd() && t_[pos_] != ']') {
        TS_ASSIGN_OR_RETURN(uint32_t lo, ParseChar());
        uint32_t hi = lo;
        if (pos_ + 1 < t_.size() && t_[pos_] == '-' && t_[pos_ + 1] != ']') {
          ++pos_;
          TS_ASSIGN_OR_RETURN(hi, ParseChar());
          if (hi < lo) return Error("range out of order");
        }
        ranges.push_back({lo, hi});
      }
      if (AtEnd()) return Error("unterminated character class");
      ++pos_;
      return negated ? Expr::CodePointsExcept(ranges) : Expr::CodePoints(ranges);
    }
    if (c == '.') {
      ++pos_;
      return Expr::CodePointsExcept({});
    }
    if (c == '(') {
      ++pos_;
      TS_ASSIGN_OR_RETURN(Expr e, ParseAlt(depth + 1));
      SkipSpace();
      if (AtEnd() || t_[pos_] != ')') return Error("missing ')'");
      ++pos_;
      return e;
    }
    if (IsNameChar(c)) {
      const std::string name = ParseName();
      TS_ASSIGN_OR_RETURN(int32_t id, RuleId(name));
      return Expr::Ref(id);
    }
    return Error(fmt::format("unexpected character '{}'", c));
  }

  std::string_view t_;
  GrammarBuilder* b_;
  size_t pos_ = 0;
  std::map<std::string, int32_t> ids_;
  std::map<std::string, bool> defined_;
};

}  // namespace

StatusOr<Grammar> CompileGbnf(std::string_view text, const GrammarLimits& limits) {
  if (text.size() > 1000000) return InvalidArgumentError("grammar longer than 1000000 bytes");
  GrammarBuilder b(limits);
  return GbnfParser(text, &b).Parse();
}

}  // namespace tinyserve::structured
