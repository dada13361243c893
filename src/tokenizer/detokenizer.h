// Streaming detokenization: turns tokens (or raw token bytes) into text deltas that never split
// a UTF-8 character and whose concatenation equals the full decode, invalid byte sequences
// included (each maximal invalid subpart -> U+FFFD, as Hugging Face's decode). One object per
// stream; thread-compatible (use from one thread at a time).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace tinyserve {

// Byte-level core, usable without a Tokenizer (the engine feeds it token bytes).
class Utf8StreamDecoder {
 public:
  // Appends `bytes`; returns the text that is now final (possibly empty). Holds back at most 3
  // bytes: a proper prefix of a valid UTF-8 sequence that the next bytes may complete.
  std::string Push(std::string_view bytes);
  // End of stream: the held-back bytes as text (an incomplete sequence -> U+FFFD).
  std::string Flush();
  // Bytes held back (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  std::string pending_;
};

class IncrementalDetokenizer {
 public:
  // `tokenizer` must outlive this object.
  IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
      : tokenizer_(&tokenizer), skip_special_(skip_special_tokens) {}

  // Adds one token; returns the new final text (possibly empty).
  std::string Push(int32_t id);
  // End of stream: whatever was held back.
  std::string Flush() { return decoder_.Flush(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  Utf8StreamDecoder decoder_;
};

}  // namespace tinyserve
