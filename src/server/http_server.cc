#include "server/http_server.h"

#include <arpa/inet.h>
#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string_view>
#include <thread>

#include "engine/engine_warmup.h"
#include "server/anthropic_messages.h"
#include "server/cors.h"
#include "server/http_parser.h"
#include "server/json_replies.h"
#include "server/openai_response.h"
#include "server/openai_responses.h"
#include "server/request_budget.h"
#include "server/tokenizer_info.h"
#include "structured/tokenizer_vocabulary.h"
#include "tokenizer/chat_template_json.h"  // ParseUntrustedJson
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/logging.h"

namespace tinyserve {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

// Compares in time that depends only on the lengths, not on where the first difference is.
bool ConstantTimeEquals(std::string_view given, std::string_view expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i)
    diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  return diff == 0;
}

// The host part of a Host header or of an Origin URL's authority ("[::1]:8000" -> "::1").
std::string HostName(std::string_view authority) {
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    return AsciiLower(authority.substr(1, close == std::string_view::npos ? close : close - 1));
  }
  return AsciiLower(authority.substr(0, authority.find(':')));
}

bool IsIpLiteral(const std::string& host) {
  in6_addr v6;
  in_addr v4;
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

constexpr std::string_view kPostRoutes[] = {
    "/v1/completions", "/v1/chat/completions",      "/v1/responses",
    "/v1/messages",    "/v1/messages/count_tokens", "/tokenize",
    "/detokenize"};
constexpr std::string_view kGetRoutes[] = {"/v1/models", "/health", "/version", "/metrics",
                                           "/tokenizer_info"};

template <size_t N>
bool Listed(const std::string_view (&routes)[N], std::string_view path) {
  return std::find(std::begin(routes), std::end(routes), path) != std::end(routes);
}

// Anthropic's routes answer errors in Anthropic's shape.
ErrorShape ErrorShapeOf(std::string_view path) {
  return path.starts_with("/v1/messages") ? ErrorShape::kAnthropic : ErrorShape::kOpenAI;
}

// The API key a client sent: OpenAI's clients send "Authorization: Bearer KEY", Anthropic's
// "X-Api-Key: KEY" (llama-server accepts both too). "" when neither.
std::string_view PresentedApiKey(const HttpRequest& req) {
  constexpr std::string_view kBearer = "Bearer ";
  const std::string_view auth = req.Header("authorization");
  if (auth.starts_with(kBearer)) return auth.substr(kBearer.size());
  return req.Header("x-api-key");
}

// GET /v1/models/{id}: OpenAI's "retrieve model". SDKs send the id percent-encoded (the Node
// SDK encodes ':' and '/') or raw (the Python SDK), so the rest of the path is decoded first.
constexpr std::string_view kModelPrefix = "/v1/models/";

// One entry of /v1/models, as OpenAI's SDKs read it and, in the same object, as Anthropic's do
// (type, display_name, created_at). No "root": it would be the model's file path on this
// machine.
Json ModelObject(const std::string& id, int64_t max_model_len) {
  const std::time_t now = std::time(nullptr);
  return Json{{"id", id},
              {"object", "model"},
              {"created", now},
              {"owned_by", "tinyserve"},
              {"max_model_len", max_model_len},
              {"type", "model"},
              {"display_name", id},
              {"created_at", fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(now))}};
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string RandomHex() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

// Events a call's outbox holds for its handler before the engine stops the call's requests. The
// handler takes every event within ~50 ms unless it is blocked writing to a client that does
// not read its stream (the socket's send buffer full): such a client would otherwise make the
// engine compute, and the server keep, every token it asked for (~1 KiB each with logprobs).
// 1024 events: ~20 s of one stream at 50 tokens/s, once the send buffer is full.
constexpr int64_t kMaxPendingEvents = 1024;

}  // namespace

// One generation request in flight: its engine streams and the response being built. Owned by
// the handler's worker thread; Shutdown reads engine_ids under calls_mu_.
struct ApiServer::Call {
  ParsedRequest request;
  std::vector<std::string> engine_ids;
  // Every prompt's stream posts here (tagged with the prompt index): the handler waits on this
  // one outbox however many prompts and choices the call has.
  std::shared_ptr<Outbox> outbox = std::make_shared<Outbox>(kMaxPendingEvents);
  std::unique_ptr<ResponseBuilder> builder;
  // /v1/responses, /v1/messages: the chat output reshaped into that API's answer.
  std::unique_ptr<ChatReshaper> reshaper;
  ErrorShape error_shape = ErrorShape::kOpenAI;
  Clock::time_point arrival;
  Clock::time_point deadline;  // aborted after this
  AdmissionDecision admission;
  std::optional<Outbox::Item> first_event;  // taken by AwaitStart
  Clock::time_point last_token;
  Clock::time_point last_write;
  bool first_token = false;
  bool aborted = false;

  // The next event of any prompt, waiting at most `wait`; nullopt if none yet. The event
  // AwaitStart took (to choose the response status) comes first.
  std::optional<Outbox::Item> NextEvent(std::chrono::milliseconds wait) {
    if (first_event) return std::exchange(first_event, std::nullopt);
    return outbox->Next(wait);
  }
  bool AllDone() const { return !first_event && outbox->done(); }
};

ApiServer::ApiServer(Engine* engine, std::shared_ptr<const Tokenizer> tokenizer,
                     ServerOptions options)
    : engine_(engine), tokenizer_(std::move(tokenizer)), options_(std::move(options)) {
  api_context_.tokenizer = tokenizer_.get();
  api_context_.served_model_name = options_.served_model_name;
  api_context_.vocab_size = engine_->model_config().vocab_size;
  api_context_.max_model_len = engine_->limits().max_model_len;
  api_context_.num_kv_blocks = engine_->limits().num_kv_blocks;
  api_context_.block_size = engine_->options().block_size;
  api_context_.allow_priority = options_.scheduling_policy == "priority";
  auto vocab = structured::VocabularyFromTokenizer(
      *tokenizer_, static_cast<int32_t>(engine_->model_config().vocab_size),
      engine_->eos_token_ids());
  if (vocab.ok()) {
    grammars_ = std::make_unique<structured::GrammarCache>(*vocab, options_.grammar_cache_size);
  } else {
    structured_error_ = vocab.status().message();
    TS_LOG_WARNING("structured output is off: {}", structured_error_);
  }
  HttpServerOptions http;
  http.host = options_.host;
  http.port = options_.port;
  http.worker_threads = options_.http_threads > 0 ? options_.http_threads
                                                  : engine_->options().max_num_seqs +
                                                        engine_->options().max_queue_len + 16;
  http.limits.max_body_bytes = options_.max_request_bytes;
  http.limits.max_header_bytes = options_.max_header_bytes;
  http.keep_alive_timeout_s = options_.keep_alive_timeout_s;
  http.header_timeout_s = options_.header_timeout_s;
  http.read_timeout_s = options_.read_timeout_s;
  http.write_timeout_s = options_.write_timeout_s;
  http.max_connections = options_.max_connections;
  // A quarter by default: a load generator on one host (benchmarks run hundreds of streams)
  // still fits, and no one address can take more than a quarter of the connections.
  http.max_connections_per_client = options_.max_connections_per_client >= 0
                                        ? options_.max_connections_per_client
                                        : std::max(1, options_.max_connections / 4);
  http.trusted_proxies = options_.trusted_proxies;
  http.max_buffered_body_bytes = options_.max_buffered_body_bytes;
  http_ = std::make_unique<HttpServer>(
      std::move(http), [this](HttpRequest& req, HttpResponder& res) { Route(req, res); },
      [](int status, const std::string& message) {
        return ApiErrorForHttpStatus(status, message).Body();
      },
      [this](int status) { metrics_.CountHttpResponse(status); });
}

ApiServer::~ApiServer() = default;

Status ApiServer::Bind() { return http_->Bind(); }

void ApiServer::Serve() { http_->Serve(); }

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
  auto in_flight = [&] {
    MutexLock lock(&calls_mu_);
    return calls_.size();
  };
  const auto deadline = Clock::now() + grace;
  while (in_flight() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (const size_t n = in_flight(); n > 0) TS_LOG_WARNING("shutdown: aborting {} requests", n);
  abort_all_ = true;  // each handler aborts its own engine requests
  const auto abort_deadline = Clock::now() + std::chrono::seconds(5);
  while (in_flight() > 0 && Clock::now() < abort_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  http_->Stop();
}

std::optional<ApiError> ApiServer::Screen(const HttpRequest& req, bool origin_listed) const {
  const bool is_public = req.path == "/health" || req.path == "/version" ||
                         (req.path == "/metrics" && options_.public_metrics);
  if (!options_.api_key.empty()) {
    if (is_public) return std::nullopt;
    if (ConstantTimeEquals(PresentedApiKey(req), options_.api_key)) return std::nullopt;
    return ApiError{401,
                    "Invalid or missing API key (send 'Authorization: Bearer KEY' or "
                    "'X-Api-Key: KEY')",
                    "authentication_error", "", "invalid_api_key"};
  }
  // No key: anything that reaches the port may use the API, so make sure a browser page from
  // elsewhere cannot. DNS rebinding sends the attacker's host name in Host; a cross-origin page
  // can send a text/plain or form POST without a preflight, never an application/json one.
  const std::string host = HostName(req.Header("host"));
  const bool any_host = std::find(options_.allowed_hosts.begin(), options_.allowed_hosts.end(),
                                  "*") != options_.allowed_hosts.end();
  if (!any_host && !host.empty() && host != "localhost" && !IsIpLiteral(host) &&
      std::find(options_.allowed_hosts.begin(), options_.allowed_hosts.end(), host) ==
          options_.allowed_hosts.end())
    return ApiError{421, fmt::format("Host '{}' is not accepted (see --allowed-hosts)", host),
                    "invalid_request_error", "", ""};
  if (const std::string_view origin = req.Header("origin"); !origin.empty()) {
    const size_t scheme = origin.find("://");
    const std::string origin_host =
        scheme == std::string_view::npos ? "" : HostName(origin.substr(scheme + 3));
    if (origin_host != host && !origin_listed)
      return ApiError{403, "cross-origin requests are refused (see --allowed-origins)",
                      "invalid_request_error", "", ""};
  }
  return std::nullopt;
}

void ApiServer::Route(HttpRequest& req, HttpResponder& res) {
  const bool post_route = Listed(kPostRoutes, req.path);
  const bool known = post_route || Listed(kGetRoutes, req.path) ||
                     (req.path.size() > kModelPrefix.size() && req.path.starts_with(kModelPrefix));
  const ErrorShape shape = ErrorShapeOf(req.path);
  if (!known)
    return SendError(res,
                     ApiError{404, fmt::format("no route for {} {}", req.method, req.path),
                              "not_found_error", "", ""},
                     {}, shape);
  // CORS: a preflight carries no credentials and is answered before screening; a request from
  // an allowed origin is screened as any other and its response names the origin.
  const std::string_view origin = req.Header("origin");
  const bool cors = OriginAllowed(options_.allowed_origins, origin);
  if (req.method == "OPTIONS" && cors && req.HasHeader("access-control-request-method"))
    return (void)res.Send(204, "", "",
                          PreflightHeaders(origin, req.Header("access-control-request-headers")));
  if (cors) res.AddHeaders(CorsHeaders(origin));
  if (auto error = Screen(req, cors)) return SendError(res, *error, {}, shape);
  const bool post = req.method == "POST";
  const bool get = req.method == "GET" || req.method == "HEAD";
  if (post_route ? !post : !get)
    return SendError(res,
                     ApiError{405, fmt::format("method {} not allowed on {}", req.method, req.path),
                              "invalid_request_error", "", ""},
                     {}, shape);
  if (post) {
    // JSON only (as FastAPI): also what keeps cross-site "simple" POSTs out.
    const std::string_view type = req.Header("content-type");
    if (!type.empty() && !IsJsonMediaType(type))
      return SendError(res,
                       ApiError{415, "send the body as 'Content-Type: application/json'",
                                "invalid_request_error", "", ""},
                       {}, shape);
  }
  if (req.path == "/v1/completions") return HandleGenerate(Endpoint::kCompletions, req, res);
  if (req.path == "/v1/chat/completions") return HandleGenerate(Endpoint::kChat, req, res);
  if (req.path == "/v1/responses") return HandleGenerate(Endpoint::kResponses, req, res);
  if (req.path == "/v1/messages") return HandleGenerate(Endpoint::kMessages, req, res);
  if (req.path == "/v1/messages/count_tokens") return HandleCountTokens(req, res);
  if (req.path == "/tokenize") return HandleTokenize(req, res);
  if (req.path == "/detokenize") return HandleDetokenize(req, res);
  if (req.path == "/tokenizer_info")
    return SendJson(res, TokenizerInfoJson(*tokenizer_, api_context_.max_model_len));
  if (req.path == "/v1/models") return HandleModels(res);
  if (req.path.starts_with(kModelPrefix))
    return HandleModel(std::string_view(req.path).substr(kModelPrefix.size()), res);
  if (req.path == "/health") {
    (void)engine_->Stats();  // answers from the published snapshot: never waits for a step
    if (draining_)
      return SendError(res, ApiError{503, "shutting down", "service_unavailable", "", ""});
    // vLLM answers an empty 200; llama-server {"status": "ok"}, which its clients read.
    return SendJson(res, R"({"status":"ok"})");
  }
  if (req.path == "/version") return SendJson(res, Json{{"version", TINYSERVE_VERSION}}.dump());
  // /metrics
  std::string body = metrics_.Render(
      engine_->Stats(), engine_->options(), engine_->limits(), options_.served_model_name,
      grammars_ ? grammars_->stats() : structured::GrammarCache::Stats{});
  RenderAdmissionMetrics(engine_->admission().Stats(), engine_->options(),
                         options_.served_model_name, &body);
  RenderHttpBodyMetrics(http_->buffered_body_bytes(), http_->max_buffered_body_bytes(),
                        options_.served_model_name, &body);
  res.Send(200, "text/plain; version=0.0.4", body);
}

bool ApiServer::Admit(const std::shared_ptr<Call>& call, const RequestBudget& budget,
                      HttpResponder& res) {
  const WorkRequest work = WorkOfCall(call->request, budget, call->arrival,
                                      options_.max_queue_delay_s, engine_->limits().max_model_len);
  call->deadline = work.deadline;
  call->admission = engine_->admission().Admit(work, Clock::now());
  if (call->admission.admitted()) return true;
  if (call->admission.recalibrate) StartCalibration(*engine_);
  std::string retry_after;
  const ApiError error = RefusalError(call->admission, /*shed=*/false, &retry_after);
  SendError(res, error, {{"Retry-After", retry_after}}, call->error_shape);
  return false;
}

bool ApiServer::AwaitStart(const std::shared_ptr<Call>& call, HttpResponder& res) {
  auto last_poll = Clock::now();
  while (!call->first_event && Clock::now() < call->deadline && !draining_) {
    call->first_event = call->NextEvent(std::chrono::milliseconds(50));
    if (!call->first_event && Clock::now() - last_poll >= std::chrono::milliseconds(50)) {
      last_poll = Clock::now();
      if (res.ClientGone()) return false;  // the caller's cleanup aborts the engine requests
    }
  }
  if (!call->first_event) return true;  // the main loop handles the deadline and shutdown
  const RequestEvent& e = call->first_event->event;
  if (e.finish_reason != FinishReason::kError || e.error.code() != StatusCode::kUnavailable ||
      !e.token_ids.empty())
    return true;
  AdmissionDecision shed = call->admission;
  shed.retry_after_s = engine_->admission().Stats().predicted_wait_s;
  std::string retry_after;
  const ApiError error = RefusalError(shed, /*shed=*/true, &retry_after);
  SendError(res, error, {{"Retry-After", retry_after}}, call->error_shape);
  return false;
}

void ApiServer::HandleModels(HttpResponder& res) {
  // OpenAI's list; has_more, first_id and last_id are the page Anthropic's SDKs read.
  const std::string& id = options_.served_model_name;
  SendJson(res, Json{{"object", "list"},
                     {"data", Json::array({ModelObject(id, engine_->limits().max_model_len)})},
                     {"has_more", false},
                     {"first_id", id},
                     {"last_id", id}}
                    .dump());
}

void ApiServer::HandleModel(std::string_view encoded_id, HttpResponder& res) {
  const std::optional<std::string> id = PercentDecode(encoded_id);
  if (id != options_.served_model_name) {
    // OpenAI's answer for an unknown model, with the id as sent (decoded when it decodes).
    return SendError(res, ApiError{404,
                                   fmt::format("The model '{}' does not exist",
                                               id ? *id : std::string(encoded_id)),
                                   "invalid_request_error", "model", "model_not_found"});
  }
  SendJson(res, ModelObject(options_.served_model_name, engine_->limits().max_model_len).dump());
}

void ApiServer::HandleGenerate(Endpoint endpoint, HttpRequest& req, HttpResponder& res) {
  auto call = std::make_shared<Call>();
  call->arrival = Clock::now();
  // Registered before the draining check: Shutdown either sees this call or we see draining_.
  Track(call);
  struct Untracker {
    ApiServer* server;
    std::shared_ptr<Call> call;
    ~Untracker() {
      if (!call->aborted)  // whatever ended the handler early, the engine must stop too
        for (const auto& eid : call->engine_ids) server->engine_->Abort(eid);
      server->Untrack(call);
    }
  } untracker{this, call};
  const Endpoint api = endpoint;  // the API the client speaks; Responses and Messages are chats
  if (api == Endpoint::kMessages) call->error_shape = ErrorShape::kAnthropic;
  auto fail = [&](const ApiError& error, const HttpHeaders& headers = {}) {
    SendError(res, error, headers, call->error_shape);
  };
  if (draining_) return fail(ApiError{503, "shutting down", "service_unavailable", "", ""});
  RequestBudget budget;
  Json foreign_request;  // Responses, Messages: the body as sent, served as the chat it means
  if (api == Endpoint::kResponses || api == Endpoint::kMessages) {
    auto body = ParseUntrustedJson(req.body);
    if (!body.ok())
      return fail(
          BadRequest("the request body is not acceptable JSON: " + body.status().message()));
    auto chat =
        api == Endpoint::kResponses ? ResponsesToChatBody(*body) : MessagesToChatBody(*body);
    if (auto* error = std::get_if<ApiError>(&chat)) return fail(*error);
    req.body = std::get<Json>(chat).dump();
    foreign_request = std::move(*body);
    endpoint = Endpoint::kChat;
  }
  {
    ApiContext context = api_context_;
    // Anthropic's API lets max_tokens reach past the context (the stop reason says when the
    // context ended the answer).
    context.cap_max_tokens_at_context = api == Endpoint::kMessages;
    auto parsed = ParseRequest(endpoint, req.body, context);
    if (auto* error = std::get_if<ApiError>(&parsed)) {
      if (api == Endpoint::kResponses) return fail(ResponsesError(*error));
      return fail(api == Endpoint::kMessages ? MessagesError(*error) : *error);
    }
    call->request = std::move(std::get<ParsedRequest>(parsed));
    // The deadline and client (body `timeout`/`user`, X-Request-Timeout, the API key); the body
    // already passed ParseRequest's depth and size checks.
    auto parsed_budget = ParseRequestBudget(req.body, req.Header("x-request-timeout"),
                                            PresentedApiKey(req), options_.request_timeout_s);
    std::string().swap(req.body);  // ignored fields must not live as long as the request
    if (auto* error = std::get_if<ApiError>(&parsed_budget)) return fail(*error);
    budget = std::get<RequestBudget>(parsed_budget);
  }
  if (call->request.constraint && !grammars_)
    return fail(BadRequest("structured output is unavailable: " + structured_error_,
                           call->request.constraint->param));
  // Admission before the grammar: compiling a new schema can take a second on a busy CPU, and
  // a refusal must come back within milliseconds.
  if (!Admit(call, budget, res)) return;
  // Compiled here, on the HTTP thread, so the engine thread never waits for it.
  std::shared_ptr<const structured::CompiledGrammar> grammar;
  if (const auto& c = call->request.constraint) {
    // Compile slots go to client addresses in turn: a flood of slow schemas from one address
    // cannot queue everyone else's behind it (`user` is the client's own word, not used here).
    auto compiled = grammars_->Get(c->kind, c->text, ClientAddress(req));
    if (!compiled.ok()) {
      engine_->admission().Cancel(call->admission.ticket);
      // InvalidArgument: the client's text is refused (400 naming the field); Unavailable:
      // every compile slot stayed busy (503, worth a retry).
      return fail(ApiErrorFromStatus(compiled.status(), c->param));
    }
    grammar = std::move(*compiled);
  }
  const std::string id_prefix = api == Endpoint::kResponses   ? "resp_"
                                : api == Endpoint::kMessages  ? "msg_"
                                : endpoint == Endpoint::kChat ? "chatcmpl-"
                                                              : "cmpl-";
  const std::string id = fmt::format("{}{}{:x}", id_prefix, RandomHex(), next_id_++);
  const auto created = static_cast<int64_t>(std::time(nullptr));
  call->builder = std::make_unique<ResponseBuilder>(call->request, tokenizer_.get(), id, created);
  if (api == Endpoint::kResponses) {
    call->reshaper =
        std::make_unique<ResponsesShaper>(foreign_request, call->request.model, id, created);
  } else if (api == Endpoint::kMessages) {
    call->reshaper = std::make_unique<MessagesShaper>(
        call->request.model, id, static_cast<int64_t>(call->request.prompts[0].size()),
        foreign_request.value("max_tokens", int64_t{0}));
  }
  foreign_request = nullptr;  // its messages must not live as long as the call
  for (size_t p = 0; p < call->request.prompts.size(); ++p) {
    GenerateRequest g = call->request.base;
    g.request_id = fmt::format("{}-{}", id, p);
    g.prompt_token_ids = call->request.prompts[p];
    g.grammar = grammar;
    g.admission_ticket = call->admission.ticket;
    auto stream = engine_->Submit(std::move(g), call->outbox, static_cast<int32_t>(p));
    if (!stream.ok()) {
      engine_->admission().Cancel(call->admission.ticket);
      if (stream.status().code() == StatusCode::kUnavailable)
        return fail(ApiErrorFromStatus(stream.status()), {{"Retry-After", "1"}});
      return fail(ApiErrorFromStatus(stream.status()));
    }
    call->engine_ids.push_back(fmt::format("{}-{}", id, p));
  }
  if (!AwaitStart(call, res)) return;
  call->last_write = Clock::now();

  const bool stream = call->request.stream;
  auto abort = [&] {
    if (call->aborted) return;
    call->aborted = true;
    for (const auto& eid : call->engine_ids) engine_->Abort(eid);
  };
  if (stream && !res.BeginStream(200, "text/event-stream", {{"Cache-Control", "no-cache"}}))
    return abort();
  auto write = [&](const std::string& data) {
    call->last_write = Clock::now();
    if (res.Write(data)) return true;
    abort();
    return false;
  };
  const auto deadline = call->deadline;
  auto last_poll = Clock::now();
  while (true) {
    if (!call->aborted && (abort_all_ || Clock::now() > deadline)) {
      call->aborted = true;
      for (const auto& eid : call->engine_ids) engine_->Abort(eid);
    }
    auto next = call->NextEvent(std::chrono::milliseconds(50));
    const auto now = Clock::now();
    if (next) {
      const int32_t prompt_idx = next->tag;
      RequestEvent& event = next->event;
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
        TS_LOG_WARNING("request {} failed: {}", call->engine_ids[prompt_idx],
                       event.error.ToString());
      if (stream) {
        for (const std::string& chunk : call->builder->StreamChunks(prompt_idx, event)) {
          const std::string sse =
              call->reshaper ? call->reshaper->FromChunk(chunk) : SseEvent(chunk);
          if (!sse.empty() && !write(sse)) return;
        }
      } else {
        call->builder->Add(prompt_idx, event);
      }
    } else if (stream && Seconds(now - call->last_write) >= options_.heartbeat_s) {
      if (!write(": keep-alive\n\n")) return;  // SSE ignores comment lines
    }
    // Every request, streamed or not, notices a vanished client within ~50 ms: the socket is
    // polled for EOF/RST instead of waiting for a write to fail.
    if (!call->aborted && now - last_poll >= std::chrono::milliseconds(50)) {
      last_poll = now;
      if (res.ClientGone()) return abort();
    }
    if (call->AllDone()) break;
  }
  // Observed before the last write: a client that has read its final byte may ask /metrics at
  // once, and its request must already be counted there.
  metrics_.ObserveEndToEnd(Seconds(Clock::now() - call->arrival));
  if (stream) {
    if (call->reshaper) {
      call->reshaper->FromChunk(call->builder->UsageChunk());  // fills the usage
      if (!write(call->reshaper->Finish()) || !res.EndStream()) return abort();
    } else {
      if (call->request.include_usage && !write(SseEvent(call->builder->UsageChunk()))) return;
      if (!write("data: [DONE]\n\n") || !res.EndStream()) return abort();
    }
  } else if (const std::optional<ApiError> failure = call->builder->Failure()) {
    fail(*failure);
  } else if (!res.Send(200, "application/json",
                       call->reshaper ? call->reshaper->FromCompletion(call->builder->FinalBody())
                                      : call->builder->FinalBody())) {
    return abort();
  }
  call->aborted = true;  // finished: nothing left to abort
}

}  // namespace tinyserve
