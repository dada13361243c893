// `tinyserve serve MODEL`: the OpenAI-compatible server (flags named as vLLM's). Loads the
// model and tokenizer, starts the engine, serves until SIGINT/SIGTERM, then shuts down
// gracefully (in-flight requests get --shutdown-timeout seconds) and exits 0.
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "cli/model_loader.h"
#include "engine/engine_warmup.h"
#include "server/cors.h"
#include "server/http_server.h"
#include "tokenizer/chat_template.h"
#include "util/logging.h"

namespace tinyserve::cli {
namespace {

struct ServeFlags {
  std::string model = "dummy:qwen2.5-0.5b";
  std::string dtype;
  std::string quantization;
  int64_t num_layers = 0;
  uint64_t weights_seed = 0;
  std::string generation_config = "auto";
  double shutdown_timeout_s = 30;
  ServerOptions server;
  EngineFlags engine;
};

Status RunServe(ServeFlags f) {
  if (f.server.api_key.empty()) {
    if (const char* key = std::getenv("TINYSERVE_API_KEY"); key && *key) f.server.api_key = key;
  }
  if (f.server.max_request_bytes < 1024)
    return InvalidArgumentError("--max-request-bytes must be >= 1024");
  if (f.server.request_timeout_s <= 0) return InvalidArgumentError("--request-timeout must be > 0");
  if (!(f.server.max_queue_delay_s >= 0))
    return InvalidArgumentError("--max-queue-delay must be >= 0");
  if (f.server.max_header_bytes < 1024)
    return InvalidArgumentError("--max-header-bytes must be >= 1024");
  for (double t : {f.server.header_timeout_s, f.server.read_timeout_s, f.server.write_timeout_s,
                   f.server.keep_alive_timeout_s})
    if (!(t > 0)) return InvalidArgumentError("timeouts must be > 0");
  if (f.server.max_connections < 1) return InvalidArgumentError("--max-connections must be >= 1");
  if (f.server.max_connections_per_client < -1)
    return InvalidArgumentError("--max-connections-per-client must be >= -1");
  if (f.server.max_buffered_body_bytes != 0 &&
      f.server.max_buffered_body_bytes < f.server.max_request_bytes)
    return InvalidArgumentError("--max-buffered-body-bytes must be 0 or >= --max-request-bytes");
  TS_ASSIGN_OR_RETURN(f.server.allowed_origins, ParseAllowedOrigins(f.server.allowed_origins));

  // Block the signals before any thread starts so that only the watcher below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // Flags first: a bad value fails at once, not after loading the model.
  TS_ASSIGN_OR_RETURN(EngineOptions options, EngineOptionsFromFlags(f.engine));
  LoadOptions load;
  load.dtype = f.dtype;
  load.seed = f.weights_seed;
  load.quantization = f.quantization;
  load.num_layers = f.num_layers;
  const auto load_start = std::chrono::steady_clock::now();
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Qwen2Model> loaded, Qwen2Model::Load(f.model, load));
  TS_LOG_INFO("loaded {} in {:.2f} s: {:.1f} MB of matrices{}", f.model,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count(),
              loaded->weights().MatrixBytes() / 1e6,
              f.quantization.empty() ? "" : " (quantized to " + f.quantization + ")");
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer_owned, LoadTokenizerFor(*loaded));
  std::shared_ptr<const Tokenizer> tokenizer = std::move(tokenizer_owned);
  if (!tokenizer->chat_template().empty() && !IsQwen25ChatTemplate(tokenizer->chat_template()))
    TS_LOG_WARNING(
        "the model ships a chat template that is not Qwen2.5-Instruct's; chat "
        "prompts are rendered with Qwen2.5's ChatML");
  TS_ASSIGN_OR_RETURN(GenerationDefaults defaults,
                      LoadGenerationDefaults(*loaded, f.generation_config));
  const ModelConfig config = loaded->config();
  std::shared_ptr<Model> model = std::move(loaded);
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                      Engine::Create(model, options, defaults, TokenTextFromTokenizer(tokenizer)));
  // Before /health turns 200: admission then predicts from measured steps from the start.
  TS_RETURN_IF_ERROR(WarmUpEngine(*engine));

  if (f.server.served_model_name.empty()) f.server.served_model_name = f.model;
  ApiServer server(engine.get(), tokenizer, f.server);
  TS_RETURN_IF_ERROR(server.Bind());
  TS_LOG_INFO("model {} ({} layers, hidden {}, vocab {}) served as '{}'", f.model,
              config.num_layers, config.hidden_size, config.vocab_size, f.server.served_model_name);
  TS_LOG_INFO("{}", DescribeEngine(engine->options(), engine->limits()));
  TS_LOG_INFO(
      "max_request_bytes={} request_timeout={}s max_queue_delay={}s shutdown_timeout={}s "
      "api_key={} allowed_origins={}",
      f.server.max_request_bytes, f.server.request_timeout_s, f.server.max_queue_delay_s,
      f.shutdown_timeout_s, f.server.api_key.empty() ? "off" : "on",
      f.server.allowed_origins.empty()
          ? "none"
          : fmt::format("{}", fmt::join(f.server.allowed_origins, ",")));
  TS_LOG_INFO("serving on http://{}:{}/v1", f.server.host, server.port());

  std::thread watcher([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    TS_LOG_INFO("signal {}: shutting down (grace {} s)", sig, f.shutdown_timeout_s);
    server.Shutdown(std::chrono::milliseconds(static_cast<int64_t>(f.shutdown_timeout_s * 1000)));
  });
  server.Serve();
  // Serve returns only after Shutdown stopped it (or the listener failed): make sure the
  // watcher is not left waiting.
  if (watcher.joinable()) {
    // SIGTERM is blocked in every thread and the watcher sigwait()s for it: this wakes the
    // watcher, it does not terminate anything.
    pthread_kill(watcher.native_handle(), SIGTERM);  // NOLINT(bugprone-bad-signal-to-kill-thread)
    watcher.join();
  }
  TS_LOG_INFO("stopped");
  return OkStatus();
}

}  // namespace

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model over the OpenAI API");
  cmd->add_option("model", f->model, "Model directory, .gguf file or dummy:<preset>")
      ->capture_default_str();
  cmd->add_option("--dtype", f->dtype, "Dummy models: weight type (f32 f16 bf16 q8_0 q4_0 q4_k_m)");
  cmd->add_option("--seed", f->weights_seed, "Dummy models: seed of the random weights");
  cmd->add_option("--quantization,-q", f->quantization,
                  "Quantize f32/f16/bf16 matrices at load: q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k "
                  "q4_k q5_k q6_k");
  cmd->add_option("--num-layers", f->num_layers, "Dummy models: keep only the first N layers");
  cmd->add_option("--host", f->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", f->server.port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--api-key", f->server.api_key,
                  "Require 'Authorization: Bearer KEY' on /v1 (or env TINYSERVE_API_KEY)");
  cmd->add_option("--served-model-name", f->server.served_model_name,
                  "Model name in the API (default: MODEL)");
  cmd->add_option("--generation-config", f->generation_config,
                  "Request defaults: auto (the model's), vllm (none), or a directory")
      ->capture_default_str();
  cmd->add_option("--max-request-bytes", f->server.max_request_bytes, "Largest request body")
      ->capture_default_str();
  cmd->add_option("--request-timeout", f->server.request_timeout_s,
                  "Deadline in seconds of a request that states none (body 'timeout', header "
                  "X-Request-Timeout; also their cap): admission refuses what cannot finish "
                  "by then, and a request still running after it is aborted")
      ->capture_default_str();
  cmd->add_option("--max-queue-delay", f->server.max_queue_delay_s,
                  "Refuse (503) a request whose predicted wait before its first step is "
                  "longer than this many seconds (0: only the deadline)")
      ->capture_default_str();
  cmd->add_option("--shutdown-timeout", f->shutdown_timeout_s,
                  "Seconds in-flight requests may finish after SIGTERM/SIGINT")
      ->capture_default_str();
  cmd->add_option("--http-threads", f->server.http_threads,
                  "HTTP worker threads (0: max-num-seqs + max-queue-len + 16)");
  cmd->add_option("--max-header-bytes", f->server.max_header_bytes,
                  "Largest request head (request line and headers)")
      ->capture_default_str();
  cmd->add_option("--header-timeout", f->server.header_timeout_s,
                  "Seconds a client has to send its request head")
      ->capture_default_str();
  cmd->add_option("--read-timeout", f->server.read_timeout_s,
                  "Seconds a client has to send its whole request")
      ->capture_default_str();
  cmd->add_option("--write-timeout", f->server.write_timeout_s,
                  "Seconds a response write may make no progress before the client is dropped")
      ->capture_default_str();
  cmd->add_option("--timeout-keep-alive", f->server.keep_alive_timeout_s,
                  "Seconds an idle keep-alive connection is kept")
      ->capture_default_str();
  cmd->add_option("--max-connections", f->server.max_connections,
                  "Open connections beyond which new ones are closed at once")
      ->capture_default_str();
  cmd->add_option("--max-connections-per-client", f->server.max_connections_per_client,
                  "Open connections one client address may hold; more get 503 (0: no cap; -1: a "
                  "quarter of --max-connections)")
      ->capture_default_str();
  cmd->add_option("--trusted-proxies", f->server.trusted_proxies,
                  "Peer IP addresses exempt from --max-connections-per-client (a reverse "
                  "proxy carries many clients: limit them in the proxy, e.g. nginx limit_conn)")
      ->delimiter(',');
  cmd->add_option("--max-buffered-body-bytes", f->server.max_buffered_body_bytes,
                  "Body bytes of all requests still being received, together; a request that "
                  "would pass it gets 503 (0: 16 x --max-request-bytes). Bodies over 64 KiB may "
                  "hold 7/8 of it, one client address half")
      ->capture_default_str();
  cmd->add_flag("--public-metrics", f->server.public_metrics, "Serve /metrics without the API key");
  cmd->add_option("--allowed-hosts", f->server.allowed_hosts,
                  "Without --api-key: Host names accepted besides IP addresses and localhost "
                  "('*': any)")
      ->delimiter(',');
  cmd->add_option("--allowed-origins", f->server.allowed_origins,
                  "Origins whose browser pages may call the API (CORS), comma-separated or a "
                  "JSON list; '*': any (default: none, cross-origin requests get 403)")
      ->delimiter(',');
  cmd->add_option("--scheduling-policy", f->server.scheduling_policy,
                  "fcfs (requests' priority must be 0) or priority (honour it)")
      ->check(CLI::IsMember({"fcfs", "priority"}))
      ->capture_default_str();
  f->engine.options.max_queue_len = 256;
  AddEngineFlags(cmd, &f->engine);
  cmd->callback([f, exit_code] {
    Status s = RunServe(*f);
    if (!s.ok()) {
      fmt::print(stderr, "error: {}\n", s.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace tinyserve::cli
