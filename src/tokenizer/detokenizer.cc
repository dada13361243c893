#include "tokenizer/detokenizer.h"

#include "tokenizer/utf8.h"

namespace tinyserve {

std::string Utf8StreamDecoder::Push(std::string_view bytes) {
  pending_.append(bytes);
  // The cut keeps a possible character start out of the emitted part; everything before it
  // decodes the same whatever bytes come next, so the deltas add up to the full decode.
  const size_t keep = IncompleteUtf8TailLength(pending_);
  const std::string_view ready(pending_.data(), pending_.size() - keep);
  std::string out = IsValidUtf8(ready) ? std::string(ready) : RepairUtf8(ready);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string Utf8StreamDecoder::Flush() {
  std::string out = RepairUtf8(pending_);
  pending_.clear();
  return out;
}

std::string IncrementalDetokenizer::Push(int32_t id) {
  if (skip_special_ && tokenizer_->IsSpecial(id)) return decoder_.Push({});
  return decoder_.Push(tokenizer_->TokenBytes(id));
}

}  // namespace tinyserve
