#include "structured/json_schema_number.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace tinyserve::structured {
namespace {

Expr Digit() { return Expr::Bytes({{'0', '9'}}); }

// Digit strings of the same length with values in [a, b] (leading zeros allowed).
Expr FixedWidth(const std::string& a, const std::string& b) {
  if (a.empty()) return Expr::Empty();
  const size_t n = a.size() - 1;
  if (a.substr(1) == std::string(n, '0') && b.substr(1) == std::string(n, '9')) {
    return Expr::Seq({Expr::Bytes({{static_cast<uint8_t>(a[0]), static_cast<uint8_t>(b[0])}}),
                      Expr::Repeat(Digit(), static_cast<int32_t>(n), static_cast<int32_t>(n))});
  }
  if (a[0] == b[0]) return Expr::Seq({Expr::Byte(a[0]), FixedWidth(a.substr(1), b.substr(1))});
  std::vector<Expr> alts;
  alts.push_back(Expr::Seq({Expr::Byte(a[0]), FixedWidth(a.substr(1), std::string(n, '9'))}));
  if (a[0] + 1 <= b[0] - 1) {
    alts.push_back(
        Expr::Seq({Expr::Bytes({{static_cast<uint8_t>(a[0] + 1), static_cast<uint8_t>(b[0] - 1)}}),
                   Expr::Repeat(Digit(), static_cast<int32_t>(n), static_cast<int32_t>(n))}));
  }
  alts.push_back(Expr::Seq({Expr::Byte(b[0]), FixedWidth(std::string(n, '0'), b.substr(1))}));
  return Expr::Alt(std::move(alts));
}

// Decimal numerals (no sign, no leading zeros) with values in [a, b]; b < 0 means unbounded.
Expr NonNegative(int64_t a, int64_t b) {
  std::vector<Expr> alts;
  const std::string sa = std::to_string(a);
  const int len_a = static_cast<int>(sa.size());
  const int len_b = b < 0 ? len_a : static_cast<int>(std::to_string(b).size());
  for (int len = len_a; len <= len_b; ++len) {
    const std::string lo = len == len_a ? sa : "1" + std::string(len - 1, '0');
    const std::string hi = (b >= 0 && len == len_b) ? std::to_string(b) : std::string(len, '9');
    alts.push_back(FixedWidth(lo, hi));
  }
  if (b < 0) {
    alts.push_back(Expr::Seq({Expr::Bytes({{'1', '9'}}), Expr::Repeat(Digit(), len_a, -1)}));
  }
  return Expr::Alt(std::move(alts));
}

// Integers in [lo, hi] (either side may be absent), as JSON numerals.
Expr IntegerRange(std::optional<int64_t> lo, std::optional<int64_t> hi) {
  std::vector<Expr> alts;
  if (!hi || *hi >= 0) {
    const int64_t a = lo ? std::max<int64_t>(*lo, 0) : 0;
    if (!hi || a <= *hi) alts.push_back(NonNegative(a, hi ? *hi : -1));
  }
  if (!lo || *lo < 0) {
    // -j for j in [max(1, -hi), -lo].
    const int64_t a = hi ? std::max<int64_t>(1, -std::min<int64_t>(*hi, -1)) : 1;
    if (!lo || a <= -*lo)
      alts.push_back(Expr::Seq({Expr::Byte('-'), NonNegative(a, lo ? -*lo : -1)}));
  }
  if (alts.empty()) return Expr::Bytes({});
  return Expr::Alt(std::move(alts));
}

}  // namespace

StatusOr<NumberBounds> ReadNumberBounds(const nlohmann::ordered_json& s, const std::string& where) {
  NumberBounds b;
  for (const char* key : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
    if (!s.contains(key)) continue;
    if (!s[key].is_number()) return InvalidArgumentError("'{}' at {} is not a number", key, where);
    const double v = s[key].get<double>();
    const std::string k = key;
    if (k == "minimum" || k == "exclusiveMinimum") {
      const bool excl = k == "exclusiveMinimum";
      if (!b.lo || v > *b.lo || (v == *b.lo && excl)) b.lo = v, b.lo_excl = excl;
    } else {
      const bool excl = k == "exclusiveMaximum";
      if (!b.hi || v < *b.hi || (v == *b.hi && excl)) b.hi = v, b.hi_excl = excl;
    }
  }
  return b;
}

Expr AnyJsonNumber() {
  return Expr::Seq(
      {Expr::Opt(Expr::Byte('-')),
       Expr::Alt({Expr::Byte('0'), Expr::Seq({Expr::Bytes({{'1', '9'}}), Expr::Star(Digit())})}),
       Expr::Opt(Expr::Seq({Expr::Byte('.'), Expr::Plus(Digit())})),
       Expr::Opt(
           Expr::Seq({Expr::Bytes({{'e', 'e'}, {'E', 'E'}}),
                      Expr::Opt(Expr::Bytes({{'+', '+'}, {'-', '-'}})), Expr::Plus(Digit())}))});
}

Expr AnyJsonInteger() {
  return Expr::Seq(
      {Expr::Opt(Expr::Byte('-')),
       Expr::Alt({Expr::Byte('0'), Expr::Seq({Expr::Bytes({{'1', '9'}}), Expr::Star(Digit())})})});
}

StatusOr<Expr> NumberInBounds(const NumberBounds& bounds, bool integer, const std::string& where) {
  const std::optional<double> lo = bounds.lo, hi = bounds.hi;
  const bool lo_excl = bounds.lo_excl, hi_excl = bounds.hi_excl;
  constexpr double kBig = 1e18;
  // Integer bounds of the values allowed.
  std::optional<int64_t> ilo, ihi;
  if (lo && *lo > -kBig) ilo = static_cast<int64_t>(lo_excl ? std::floor(*lo) + 1 : std::ceil(*lo));
  if (hi && *hi < kBig) ihi = static_cast<int64_t>(hi_excl ? std::ceil(*hi) - 1 : std::floor(*hi));
  if (lo && *lo >= kBig) return InvalidArgumentError("'minimum' at {} is too large", where);
  if (hi && *hi <= -kBig) return InvalidArgumentError("'maximum' at {} is too small", where);
  std::vector<Expr> alts;
  if (!ilo || !ihi || *ilo <= *ihi) alts.push_back(IntegerRange(ilo, ihi));
  if (!integer) {
    // k.f with f non-zero lies in (k, k+1); -j.f in (-(j+1), -j).
    const Expr frac = Expr::Seq({Expr::Byte('.'), Expr::Star(Digit()), Expr::Bytes({{'1', '9'}})});
    std::optional<int64_t> klo = lo ? std::optional<int64_t>(std::max<int64_t>(
                                          0, static_cast<int64_t>(std::ceil(std::max(*lo, -kBig)))))
                                    : int64_t{0};
    std::optional<int64_t> khi;
    if (hi) khi = static_cast<int64_t>(std::floor(std::min(*hi, kBig))) - 1;
    if (!khi || *khi >= *klo) alts.push_back(Expr::Seq({IntegerRange(klo, khi), frac}));
    std::optional<int64_t> jlo = int64_t{0}, jhi;
    if (hi) jlo = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(-std::min(*hi, kBig))));
    if (lo) jhi = static_cast<int64_t>(std::floor(-std::max(*lo, -kBig))) - 1;
    if (!jhi || *jhi >= *jlo) {
      alts.push_back(Expr::Seq({Expr::Byte('-'), IntegerRange(jlo, jhi), frac}));
    }
  }
  if (alts.empty()) return InvalidArgumentError("numeric range at {} is empty", where);
  return Expr::Alt(std::move(alts));
}

}  // namespace tinyserve::structured
