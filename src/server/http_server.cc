#include "server/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <random>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "server/openai_response.h"
#include "structured/tokenizer_vocabulary.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/logging.h"

namespace tinyserve {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

void SendError(httplib::Response& res, const ApiError& error) {
  res.status = error.http_status;
  res.set_content(error.Body(), "application/json");
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string RandomHex() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

}  // namespace

// One generation request in flight: its engine streams and the response being built. Shared
// by the handler and httplib's content provider (which runs after the handler returns).
struct ApiServer::Call {
  ParsedRequest request;
  std::vector<std::string> engine_ids;
  std::vector<std::shared_ptr<RequestStream>> streams;  // [prompt]
  std::unique_ptr<ResponseBuilder> builder;
  Clock::time_point arrival;
  Clock::time_point last_token;
  Clock::time_point last_write;
  bool first_token = false;
  bool finished = false;
  std::atomic<bool> aborted{false};

  // The next event of any stream, waiting at most `wait`; nullopt if none yet.
  std::optional<std::pair<int32_t, RequestEvent>> NextEvent(std::chrono::milliseconds wait) {
    if (streams.size() == 1) {
      auto e = streams[0]->Next(wait);
      if (e) return std::make_pair(0, std::move(*e));
      return std::nullopt;
    }
    const auto deadline = Clock::now() + wait;
    do {
      for (size_t p = 0; p < streams.size(); ++p) {
        auto e = streams[p]->Next(std::chrono::milliseconds(0));
        if (e) return std::make_pair(static_cast<int32_t>(p), std::move(*e));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    } while (Clock::now() < deadline);
    return std::nullopt;
  }
  bool AllDone() const {
    for (const auto& s : streams)
      if (!s->done()) return false;
    return true;
  }
};

ApiServer::ApiServer(Engine* engine, std::shared_ptr<const Tokenizer> tokenizer,
                     ServerOptions options)
    : engine_(engine), tokenizer_(std::move(tokenizer)), options_(std::move(options)),
      http_(std::make_unique<httplib::Server>()) {
  api_context_.tokenizer = tokenizer_.get();
  api_context_.served_model_name = options_.served_model_name;
  api_context_.vocab_size = engine_->model_config().vocab_size;
  api_context_.max_model_len = engine_->limits().max_model_len;
  auto vocab = structured::VocabularyFromTokenizer(
      *tokenizer_, static_cast<int32_t>(engine_->model_config().vocab_size),
      engine_->eos_token_ids());
  if (vocab.ok()) {
    grammars_ = std::make_unique<structured::GrammarCache>(*vocab, options_.grammar_cache_size);
  } else {
    structured_error_ = vocab.status().message();
    TS_LOG_WARNING("structured output is off: {}", structured_error_);
  }
  InstallRoutes();
}

ApiServer::~ApiServer() = default;

Status ApiServer::Bind() {
  if (options_.port == 0) {
    port_ = http_->bind_to_any_port(options_.host);
    if (port_ <= 0) return UnavailableError("cannot bind {}: no free port", options_.host);
    return OkStatus();
  }
  if (!http_->bind_to_port(options_.host, options_.port))
    return UnavailableError("cannot bind {}:{} (in use, or not a local address)", options_.host,
                            options_.port);
  port_ = options_.port;
  return OkStatus();
}

void ApiServer::Serve() { http_->listen_after_bind(); }

void ApiServer::Track(const std::shared_ptr<Call>& call) {
  MutexLock lock(&calls_mu_);
  calls_.insert(call);
}

void ApiServer::Untrack(const std::shared_ptr<Call>& call) {
  MutexLock lock(&calls_mu_);
  calls_.erase(call);
}

void ApiServer::Shutdown(std::chrono::milliseconds grace) {
  if (draining_.exchange(true)) return;
  const auto deadline = Clock::now() + grace;
  auto in_flight = [&] {
    MutexLock lock(&calls_mu_);
    return calls_.size();
  };
  while (in_flight() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  {
    MutexLock lock(&calls_mu_);
    if (!calls_.empty()) TS_LOG_WARNING("shutdown: aborting {} requests", calls_.size());
    for (const auto& call : calls_)
      for (const auto& id : call->engine_ids) engine_->Abort(id);
  }
  const auto abort_deadline = Clock::now() + std::chrono::seconds(5);
  while (in_flight() > 0 && Clock::now() < abort_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  http_->stop();
}

void ApiServer::InstallRoutes() {
  httplib::Server& s = *http_;
  const int threads = options_.http_threads > 0
                          ? options_.http_threads
                          : engine_->options().max_num_seqs + engine_->options().max_queue_len + 16;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.set_payload_max_length(options_.max_request_bytes);
  s.set_read_timeout(options_.read_timeout_s, 0);
  s.set_write_timeout(30, 0);
  s.set_keep_alive_timeout(5);
  s.set_tcp_nodelay(true);

  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options_.api_key.empty() || req.path.rfind("/v1/", 0) != 0)
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth == "Bearer " + options_.api_key) return httplib::Server::HandlerResponse::Unhandled;
    SendError(res, ApiError{401, "Invalid or missing API key (send 'Authorization: Bearer KEY')",
                            "authentication_error", "", "invalid_api_key"});
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses httplib sets itself (404 no route, 413 body too large, 400 bad framing) get an
  // OpenAI-shaped body too.
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    // httplib answers 404 for a known path under a method it has no handler for.
    static constexpr std::string_view kRoutes[] = {
        "/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/version",
        "/metrics",        "/tokenize",            "/detokenize"};
    if (res.status == 404 &&
        std::find(std::begin(kRoutes), std::end(kRoutes), req.path) != std::end(kRoutes))
      res.status = 405;
    switch (res.status) {
      case 405:
        SendError(res, ApiError{405, fmt::format("method {} not allowed on {}", req.method, req.path),
                                "invalid_request_error", "", ""});
        break;
      case 404:
        SendError(res, ApiError{404, fmt::format("no route for {} {}", req.method, req.path),
                                "not_found_error", "", ""});
        break;
      case 413:
        SendError(res, ApiError{413, "request body too large", "invalid_request_error", "", ""});
        break;
      default:
        SendError(res, ApiError{res.status, fmt::format("HTTP error {}", res.status),
                                res.status < 500 ? "invalid_request_error" : "internal_server_error",
                                "", ""});
    }
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                            const std::exception_ptr&) {
    SendError(res, ApiError{500, "internal server error", "internal_server_error", "", ""});
  });
  s.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    metrics_.CountHttpResponse(res.status);
  });

  auto method_not_allowed = [](const httplib::Request& req, httplib::Response& res) {
    SendError(res, ApiError{405, fmt::format("method {} not allowed on {}", req.method, req.path),
                            "invalid_request_error", "", ""});
  };
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGenerate(Endpoint::kCompletions, req.body, &res);
  });
  s.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGenerate(Endpoint::kChat, req.body, &res);
  });
  s.Get("/v1/completions", method_not_allowed);
  s.Get("/v1/chat/completions", method_not_allowed);
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    Json model = {{"id", options_.served_model_name},
                  {"object", "model"},
                  {"created", std::time(nullptr)},
                  {"owned_by", "tinyserve"},
                  {"root", options_.model_path},
                  {"max_model_len", engine_->limits().max_model_len}};
    res.set_content(Json{{"object", "list"}, {"data", Json::array({model})}}.dump(),
                    "application/json");
  });
  s.Post("/v1/models", method_not_allowed);
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    (void)engine_->Stats();  // answers from the published snapshot: never waits for a step
    if (draining_) {
      SendError(res, ApiError{503, "shutting down", "service_unavailable", "", ""});
      return;
    }
    res.set_content("{}", "application/json");
  });
  s.Get("/version", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(Json{{"version", TINYSERVE_VERSION}}.dump(), "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.Render(engine_->Stats(), engine_->options(), engine_->limits(),
                                    options_.served_model_name,
                                    grammars_ ? grammars_->stats() : structured::GrammarCache::Stats{}),
                    "text/plain; version=0.0.4");
  });
  s.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    HandleTokenize(req.body, &res);
  });
  s.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    HandleDetokenize(req.body, &res);
  });
  for (const char* path : {"/health", "/version", "/metrics"}) s.Post(path, method_not_allowed);
  for (const char* path : {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health",
                           "/version", "/metrics", "/tokenize", "/detokenize"}) {
    s.Delete(path, method_not_allowed);
    s.Put(path, method_not_allowed);
    s.Patch(path, method_not_allowed);
  }
  for (const char* path : {"/tokenize", "/detokenize"}) s.Get(path, method_not_allowed);
}

void ApiServer::HandleTokenize(const std::string& body, void* response) {
  auto& res = *static_cast<httplib::Response*>(response);
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return SendError(res, BadRequest("the request body must be a JSON object"));
  std::string text;
  if (j.contains("prompt") && j["prompt"].is_string()) {
    text = j["prompt"].get<std::string>();
  } else if (j.contains("messages")) {
    Json conv = {{"messages", j["messages"]},
                 {"add_generation_prompt", j.value("add_generation_prompt", true)}};
    auto parsed = ChatConversationFromJson(conv);
    if (!parsed.ok()) return SendError(res, BadRequest(parsed.status().message(), "messages"));
    auto rendered = RenderQwen25Chat(*parsed);
    if (!rendered.ok()) return SendError(res, BadRequest(rendered.status().message(), "messages"));
    text = *rendered;
  } else {
    return SendError(res, BadRequest("'prompt' (a string) or 'messages' is required", "prompt"));
  }
  std::vector<int32_t> ids = tokenizer_->Encode(text, /*allow_special=*/true);
  Json out = {{"count", ids.size()}, {"max_model_len", api_context_.max_model_len},
              {"tokens", ids}};
  if (j.value("return_token_strs", false)) {
    Json strs = Json::array();
    for (int32_t id : ids) strs.push_back(tokenizer_->IdToPiece(id));
    out["token_strs"] = std::move(strs);
  }
  res.set_content(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

void ApiServer::HandleDetokenize(const std::string& body, void* response) {
  auto& res = *static_cast<httplib::Response*>(response);
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("tokens") || !j["tokens"].is_array())
    return SendError(res, BadRequest("'tokens' (a list of token ids) is required", "tokens"));
  std::vector<int32_t> ids;
  for (const Json& t : j["tokens"]) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
        t.get<int64_t>() >= tokenizer_->num_tokens())
      return SendError(res, BadRequest("'tokens' holds an id outside the vocabulary", "tokens"));
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  res.set_content(Json{{"prompt", tokenizer_->Decode(ids)}}.dump(-1, ' ', false,
                                                             nlohmann::json::error_handler_t::replace),
                  "application/json");
}

void ApiServer::HandleGenerate(Endpoint endpoint, const std::string& body, void* response) {
  auto& res = *static_cast<httplib::Response*>(response);
  if (draining_) return SendError(res, ApiError{503, "shutting down", "service_unavailable", "", ""});
  auto call = std::make_shared<Call>();
  call->arrival = Clock::now();
  {
    auto parsed = ParseRequest(endpoint, body, api_context_);
    if (auto* error = std::get_if<ApiError>(&parsed)) return SendError(res, *error);
    call->request = std::move(std::get<ParsedRequest>(parsed));
  }
  // Compiled here, on the HTTP thread, so the engine thread never waits for it.
  std::shared_ptr<const structured::CompiledGrammar> grammar;
  if (const auto& c = call->request.constraint) {
    if (!grammars_)
      return SendError(res, BadRequest("structured output is unavailable: " + structured_error_,
                                       c->param));
    auto compiled = grammars_->Get(c->kind, c->text);
    if (!compiled.ok()) return SendError(res, BadRequest(compiled.status().message(), c->param));
    grammar = std::move(*compiled);
  }
  const std::string id = fmt::format(
      "{}-{}{:x}", endpoint == Endpoint::kChat ? "chatcmpl" : "cmpl", RandomHex(), next_id_++);
  call->builder = std::make_unique<ResponseBuilder>(call->request, tokenizer_.get(), id,
                                                    static_cast<int64_t>(std::time(nullptr)));
  for (size_t p = 0; p < call->request.prompts.size(); ++p) {
    GenerateRequest g = call->request.base;
    g.request_id = fmt::format("{}-{}", id, p);
    g.prompt_token_ids = call->request.prompts[p];
    g.grammar = grammar;
    auto stream = engine_->Submit(std::move(g));
    if (!stream.ok()) {
      for (const auto& submitted : call->engine_ids) engine_->Abort(submitted);
      if (stream.status().code() == StatusCode::kUnavailable) res.set_header("Retry-After", "1");
      return SendError(res, ApiErrorFromStatus(stream.status()));
    }
    call->engine_ids.push_back(fmt::format("{}-{}", id, p));
    call->streams.push_back(std::move(*stream));
  }
  Track(call);
  call->last_write = Clock::now();

  const bool stream = call->request.stream;
  auto provider = [this, call, stream](size_t, httplib::DataSink& sink) -> bool {
    const auto deadline = call->arrival + std::chrono::duration<double>(options_.request_timeout_s);
    auto write = [&](const std::string& data) {
      call->last_write = Clock::now();
      return sink.write(data.data(), data.size());
    };
    if (!call->aborted && Clock::now() > deadline) {
      call->aborted = true;
      for (const auto& eid : call->engine_ids) engine_->Abort(eid);
    }
    auto next = call->NextEvent(std::chrono::milliseconds(50));
    if (next) {
      auto& [prompt_idx, event] = *next;
      const auto now = Clock::now();
      if (!event.token_ids.empty()) {
        if (!call->first_token) {
          metrics_.ObserveTimeToFirstToken(Seconds(now - call->arrival));
          call->first_token = true;
        } else {
          metrics_.ObserveInterTokenLatency(Seconds(now - call->last_token) /
                                            double(event.token_ids.size()));
        }
        call->last_token = now;
      }
      if (event.finish_reason != FinishReason::kNone && event.usage)
        metrics_.ObserveQueueTime(event.usage->queue_time_s);
      if (event.finish_reason == FinishReason::kError)
        TS_LOG_WARNING("request {} failed: {}", call->engine_ids[prompt_idx], event.error.ToString());
      if (stream) {
        for (const std::string& chunk : call->builder->StreamChunks(prompt_idx, event))
          if (!write(SseEvent(chunk))) return false;
      } else {
        call->builder->Add(prompt_idx, event);
      }
    } else if (Seconds(Clock::now() - call->last_write) >= options_.heartbeat_s) {
      // Nothing to send: a write is the only way to learn that the client has gone. SSE
      // ignores comment lines; JSON ignores leading whitespace.
      if (!write(stream ? ": keep-alive\n\n" : " ")) return false;
    }
    if (call->AllDone()) {
      if (stream) {
        if (call->request.include_usage && !write(SseEvent(call->builder->UsageChunk())))
          return false;
        if (!write("data: [DONE]\n\n")) return false;
      } else if (!write(call->builder->FinalBody())) {
        return false;
      }
      call->finished = true;
      metrics_.ObserveEndToEnd(Seconds(Clock::now() - call->arrival));
      sink.done();
    }
    return true;
  };
  auto releaser = [this, call](bool success) {
    if (!success || !call->finished) {
      for (const auto& eid : call->engine_ids) engine_->Abort(eid);
    }
    Untrack(call);
  };
  res.set_chunked_content_provider(stream ? "text/event-stream" : "application/json",
                                   std::move(provider), std::move(releaser));
  if (stream) res.set_header("Cache-Control", "no-cache");
}

}  // namespace tinyserve
