#include "tokenizer/utf8.h"

namespace tinyserve {
namespace {

// Valid range of the second byte for lead byte `lead` (Unicode Table 3-7); {0, 0} if `lead`
// cannot start a multi-byte sequence.
struct Range {
  uint8_t lo, hi;
};
Range SecondByteRange(uint8_t lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return {0x80, 0xBF};
  if (lead == 0xE0) return {0xA0, 0xBF};
  if (lead == 0xED) return {0x80, 0x9F};
  if (lead >= 0xE1 && lead <= 0xEF) return {0x80, 0xBF};
  if (lead == 0xF0) return {0x90, 0xBF};
  if (lead >= 0xF1 && lead <= 0xF3) return {0x80, 0xBF};
  if (lead == 0xF4) return {0x80, 0x8F};
  return {0, 0};
}

size_t SequenceLengthForLead(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 0;
}

// How many bytes from `pos` match a prefix of a valid sequence (at most the sequence length).
size_t MatchingPrefix(std::string_view s, size_t pos, size_t* full_length) {
  const auto lead = static_cast<uint8_t>(s[pos]);
  const size_t n = SequenceLengthForLead(lead);
  *full_length = n;
  if (n <= 1) return n;
  size_t matched = 1;
  const Range second = SecondByteRange(lead);
  if (pos + 1 >= s.size()) return matched;
  const auto b1 = static_cast<uint8_t>(s[pos + 1]);
  if (b1 < second.lo || b1 > second.hi) return matched;
  ++matched;
  while (matched < n && pos + matched < s.size()) {
    const auto b = static_cast<uint8_t>(s[pos + matched]);
    if ((b & 0xC0) != 0x80) break;
    ++matched;
  }
  return matched;
}

}  // namespace

size_t ValidUtf8SequenceLength(std::string_view s, size_t pos) {
  size_t n = 0;
  const size_t matched = MatchingPrefix(s, pos, &n);
  return (n != 0 && matched == n) ? n : 0;
}

size_t InvalidUtf8SubpartLength(std::string_view s, size_t pos) {
  size_t n = 0;
  const size_t matched = MatchingPrefix(s, pos, &n);
  return matched == 0 ? 1 : matched;
}

bool IsValidUtf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t n = ValidUtf8SequenceLength(s, pos);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

std::string RepairUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      out.push_back(s[pos++]);
      continue;
    }
    const size_t n = ValidUtf8SequenceLength(s, pos);
    if (n != 0) {
      out.append(s.substr(pos, n));
      pos += n;
    } else {
      out.append("\xEF\xBF\xBD");
      pos += InvalidUtf8SubpartLength(s, pos);
    }
  }
  return out;
}

size_t IncompleteUtf8TailLength(std::string_view s) {
  // A held-back tail starts at one of the last three bytes and is a proper valid prefix.
  const size_t first = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t start = first; start < s.size(); ++start) {
    size_t n = 0;
    const size_t matched = MatchingPrefix(s, start, &n);
    if (n > 1 && start + matched == s.size() && matched < n) return s.size() - start;
  }
  return 0;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace tinyserve
