#include "engine/output_text.h"

#include <algorithm>

namespace tinyserve {

OutputText::OutputText(std::vector<std::string> stop, bool include_stop_str_in_output)
    : stop_(std::move(stop)), include_stop_(include_stop_str_in_output) {
  std::erase_if(stop_, [](const std::string& s) { return s.empty(); });
}

OutputText::Update OutputText::Append(std::string_view token_bytes, bool check_stop) {
  Update u;
  if (stopped_) return u;
  text_ += decoder_.Push(token_bytes);
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
  text_ += decoder_.Flush();
  std::string rest = text_.substr(emitted_);
  emitted_ = text_.size();
  return rest;
}

}  // namespace tinyserve
