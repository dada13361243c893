// The text side of one choice: token bytes -> valid UTF-8 text through the tokenizer's
// streaming decoder (a character split across tokens waits for its last byte), and stop strings
// matched across token boundaries, holding back any tail that could still grow into a stop string
// so it never reaches the stream. Engine thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/detokenizer.h"

namespace tinyserve {

class OutputText {
 public:
  OutputText(std::vector<std::string> stop, bool include_stop_str_in_output);

  struct Update {
    std::string delta;     // text safe to stream now
    bool stopped = false;  // a stop string matched; the choice is over
    std::string stop_string;
  };

  // Adds a token's bytes. Stop strings are only looked for when `check_stop` (min_tokens).
  Update Append(std::string_view token_bytes, bool check_stop);
  // The choice ended for another reason: releases held-back text; a dangling partial UTF-8
  // character becomes U+FFFD.
  std::string Flush();

  const std::string& text() const { return text_; }

 private:
  std::vector<std::string> stop_;  // non-empty strings
  const bool include_stop_;
  Utf8StreamDecoder decoder_;  // holds the bytes of an incomplete UTF-8 character
  std::string text_;           // all decoded text so far
  size_t emitted_ = 0;         // bytes of text_ already streamed
  bool stopped_ = false;
};

}  // namespace tinyserve
