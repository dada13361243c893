#include "engine/output_text.h"

#include <algorithm>

namespace tinyserve {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length of the UTF-8 sequence a lead byte starts; 0 for a byte that cannot lead.
int SequenceLength(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

bool ValidSecond(unsigned char lead, unsigned char c) {
  if ((c & 0xC0) != 0x80) return false;
  if (lead == 0xE0) return c >= 0xA0;
  if (lead == 0xED) return c <= 0x9F;  // no surrogates
  if (lead == 0xF0) return c >= 0x90;
  if (lead == 0xF4) return c <= 0x8F;
  return true;
}

}  // namespace

OutputText::OutputText(std::vector<std::string> stop, bool include_stop_str_in_output)
    : stop_(std::move(stop)), include_stop_(include_stop_str_in_output) {
  std::erase_if(stop_, [](const std::string& s) { return s.empty(); });
}

void OutputText::DecodePending(bool final) {
  size_t i = 0;
  while (i < pending_.size()) {
    const auto lead = static_cast<unsigned char>(pending_[i]);
    const int len = SequenceLength(lead);
    if (len == 0) {
      text_ += kReplacement;
      ++i;
      continue;
    }
    int have = 1;
    bool bad = false;
    while (have < len && i + have < pending_.size()) {
      const auto c = static_cast<unsigned char>(pending_[i + have]);
      if (have == 1 ? !ValidSecond(lead, c) : (c & 0xC0) != 0x80) {
        bad = true;
        break;
      }
      ++have;
    }
    if (bad) {
      text_ += kReplacement;
      i += have;
      continue;
    }
    if (have < len) {  // incomplete: wait for more bytes unless the stream is over
      if (final) {
        text_ += kReplacement;
        i = pending_.size();
      }
      break;
    }
    text_.append(pending_, i, len);
    i += len;
  }
  pending_.erase(0, i);
}

OutputText::Update OutputText::Append(std::string_view token_bytes, bool check_stop) {
  Update u;
  if (stopped_) return u;
  pending_.append(token_bytes);
  DecodePending(/*final=*/false);
  if (check_stop) {
    // Any match starts in the part not streamed yet (held-back text guarantees it).
    size_t best = std::string::npos;
    const std::string* best_stop = nullptr;
    for (const std::string& s : stop_) {
      const size_t pos = text_.find(s, emitted_);
      if (pos != std::string::npos && pos < best) {
        best = pos;
        best_stop = &s;
      }
    }
    if (best_stop != nullptr) {
      const size_t end = include_stop_ ? best + best_stop->size() : best;
      text_.resize(end);
      u.delta = text_.substr(std::min(emitted_, end));
      emitted_ = text_.size();
      u.stopped = true;
      u.stop_string = *best_stop;
      stopped_ = true;
      return u;
    }
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stop_) {
    const size_t max_len = std::min(s.size() - 1, text_.size() - emitted_);
    for (size_t len = max_len; len > hold; --len) {
      if (text_.compare(text_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  const size_t safe = text_.size() - hold;
  if (safe > emitted_) {
    u.delta = text_.substr(emitted_, safe - emitted_);
    emitted_ = safe;
  }
  return u;
}

std::string OutputText::Flush() {
  if (stopped_) return {};
  DecodePending(/*final=*/true);
  std::string rest = text_.substr(emitted_);
  emitted_ = text_.size();
  return rest;
}

}  // namespace tinyserve
