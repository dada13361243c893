// Expr constructors of grammar.h, including code-point ranges as UTF-8 byte sequences.
#include <algorithm>
#include <cstdint>

#include "structured/grammar.h"
#include "util/check.h"

namespace tinyserve::structured {

Expr Expr::Bytes(std::vector<std::pair<uint8_t, uint8_t>> r) {
  Expr e;
  e.kind = Kind::kBytes;
  e.ranges = std::move(r);
  return e;
}

Expr Expr::Literal(std::string_view s) {
  std::vector<Expr> kids;
  for (char c : s) kids.push_back(Byte(static_cast<uint8_t>(c)));
  return Seq(std::move(kids));
}

Expr Expr::Ref(int32_t rule) {
  Expr e;
  e.kind = Kind::kRef;
  e.rule = rule;
  return e;
}

Expr Expr::Seq(std::vector<Expr> kids) {
  if (kids.size() == 1) return std::move(kids[0]);
  // Splicing nested sequences keeps chains built back to front (an object's required members)
  // flat instead of one level deeper per member.
  Expr e;
  e.kind = Kind::kSeq;
  for (Expr& k : kids) {
    if (k.kind == Kind::kSeq) {
      for (Expr& g : k.kids) e.kids.push_back(std::move(g));
    } else {
      e.kids.push_back(std::move(k));
    }
  }
  if (e.kids.size() == 1) return std::move(e.kids[0]);
  return e;
}

Expr Expr::Alt(std::vector<Expr> kids) {
  if (kids.size() == 1) return std::move(kids[0]);
  Expr e;
  e.kind = Kind::kAlt;
  e.kids = std::move(kids);
  return e;
}

Expr Expr::Repeat(Expr kid, int32_t min, int32_t max) {
  if (min == 1 && max == 1) return kid;
  if (kid.kind == Kind::kRepeat && kid.min == 0) {
    // (x{0,b}){m,n} is x{0,b*n}: the empty iterations make the outer minimum free. Left as is,
    // every copy's start would reach every later copy without a byte (quadratic automaton,
    // cubic matching per step). The product saturates so the repeat limit still rejects it.
    const int64_t b = kid.max, n = max;
    const int64_t product = (b == 0 || n == 0) ? 0
                            : (b < 0 || n < 0) ? -1
                                               : std::min<int64_t>(b * n, INT32_MAX);
    Expr inner = std::move(kid.kids[0]);
    return Repeat(std::move(inner), 0, static_cast<int32_t>(product));
  }
  Expr e;
  e.kind = Kind::kRepeat;
  e.kids.push_back(std::move(kid));
  e.min = min;
  e.max = max;
  return e;
}

namespace {

// Appends the UTF-8 byte-range sequences of code points [lo, hi] (same encoded length) to `out`:
// splits the range until every continuation byte spans a full or aligned range.
void EncodeSameLength(uint32_t lo, uint32_t hi, int len, std::vector<Expr>* out) {
  for (int i = 1; i < len; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        EncodeSameLength(lo, lo | m, len, out);
        EncodeSameLength((lo | m) + 1, hi, len, out);
        return;
      }
      if ((hi & m) != m) {
        EncodeSameLength(lo, (hi & ~m) - 1, len, out);
        EncodeSameLength(hi & ~m, hi, len, out);
        return;
      }
    }
  }
  auto encode = [len](uint32_t cp, uint8_t* b) {
    if (len == 1) {
      b[0] = static_cast<uint8_t>(cp);
    } else if (len == 2) {
      b[0] = 0xC0 | (cp >> 6), b[1] = 0x80 | (cp & 0x3F);
    } else if (len == 3) {
      b[0] = 0xE0 | (cp >> 12), b[1] = 0x80 | ((cp >> 6) & 0x3F), b[2] = 0x80 | (cp & 0x3F);
    } else {
      b[0] = 0xF0 | (cp >> 18), b[1] = 0x80 | ((cp >> 12) & 0x3F);
      b[2] = 0x80 | ((cp >> 6) & 0x3F), b[3] = 0x80 | (cp & 0x3F);
    }
  };
  uint8_t a[4], b[4];
  encode(lo, a);
  encode(hi, b);
  std::vector<Expr> seq;
  seq.reserve(static_cast<size_t>(len));
  for (int i = 0; i < len; ++i) seq.push_back(Expr::Bytes({{a[i], b[i]}}));
  out->push_back(Expr::Seq(std::move(seq)));
}

}  // namespace

Expr Expr::CodePoints(const std::vector<std::pair<uint32_t, uint32_t>>& ranges) {
  static constexpr uint32_t kLenEnd[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  std::vector<Expr> alts;
  std::vector<std::pair<uint8_t, uint8_t>> ascii;
  for (auto [lo, hi] : ranges) {
    hi = std::min<uint32_t>(hi, 0x10FFFF);
    // Drop surrogates.
    std::vector<std::pair<uint32_t, uint32_t>> parts;
    if (lo <= 0xD7FF || hi >= 0xE000) {
      if (lo < 0xD800) parts.push_back({lo, std::min<uint32_t>(hi, 0xD7FF)});
      if (hi > 0xDFFF) parts.push_back({std::max<uint32_t>(lo, 0xE000), hi});
    }
    for (auto [plo, phi] : parts) {
      if (plo > phi) continue;
      uint32_t start = 0;
      for (int len = 1; len <= 4; ++len) {
        const uint32_t a = std::max(plo, start), b = std::min(phi, kLenEnd[len - 1]);
        if (a <= b) {
          if (len == 1) {
            ascii.push_back({static_cast<uint8_t>(a), static_cast<uint8_t>(b)});
          } else {
            EncodeSameLength(a, b, len, &alts);
          }
        }
        start = kLenEnd[len - 1] + 1;
      }
    }
  }
  if (!ascii.empty()) alts.insert(alts.begin(), Bytes(std::move(ascii)));
  if (alts.empty()) return Bytes({});  // matches nothing
  return Alt(std::move(alts));
}

Expr Expr::CodePointsExcept(std::vector<std::pair<uint32_t, uint32_t>> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<uint32_t, uint32_t>> keep;
  uint32_t next = 0;
  for (auto [lo, hi] : ranges) {
    if (lo > next) keep.push_back({next, lo - 1});
    next = std::max(next, hi + 1);
  }
  if (next <= 0x10FFFF) keep.push_back({next, 0x10FFFF});
  return CodePoints(keep);
}

}  // namespace tinyserve::structured
