// An API served as the chat request it translates to (/v1/responses, /v1/messages): the chat
// completion, or each chunk of its stream, rewritten into that API's answer. One reshaper per
// HTTP request, used by that request's HTTP thread only.
#pragma once

#include <string>
#include <string_view>

namespace tinyserve {

class ChatReshaper {
 public:
  virtual ~ChatReshaper() = default;
  // Non-streaming: the answer for the chat completion body `chat`.
  virtual std::string FromCompletion(std::string_view chat) = 0;
  // Streaming: the SSE events for one chat chunk payload ("" when it needs none yet).
  virtual std::string FromChunk(std::string_view payload) = 0;
  // Streaming: the events that end the answer, after the usage chunk went through FromChunk.
  virtual std::string Finish() = 0;
};

}  // namespace tinyserve
