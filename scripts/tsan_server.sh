#!/usr/bin/env bash
# The HTTP server under ThreadSanitizer with real concurrent clients: runs node tests that start
# `tinyserve serve dummy:tiny` against a TSan-built binary (the `tsan` preset's tinyserve) and
# fails on any ThreadSanitizer report, from the server or any other process they start.
#   server_load        64 parallel streams, 200 clients vanishing mid-request, SIGTERM drain
#   server_openai_sdk  the OpenAI SDK: n > 1 and multi-prompt calls (one shared outbox), logprobs
#   server_tools       grammars compiled on HTTP threads, lazy token sets on compute-pool threads
# Usage: tsan_server.sh [TINYSERVE_BIN] (default build/tsan/src/cli/tinyserve).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(realpath "${1:-build/tsan/src/cli/tinyserve}")"
TESTS=(tests/node/server_load.test.mjs tests/node/server_openai_sdk.test.mjs
       tests/node/server_tools.test.mjs)
logdir="$(mktemp -d)"
trap 'rm -rf "$logdir"' EXIT
start=$SECONDS
# halt_on_error + exitcode: the first report kills the server (the test then fails too);
# log_path: every report is also a file here, so a report during shutdown is not missed.
rc=0
TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 log_path=$logdir/tsan" \
  TINYSERVE_BIN="$BIN" TINYSERVE_SOURCE_DIR="$PWD" \
  timeout 900 node --test "${TESTS[@]}" || rc=$?
reports=("$logdir"/tsan*)
if [ -e "${reports[0]}" ]; then
  cat "${reports[@]}"
  echo "tsan_server: FAILED: ${#reports[@]} ThreadSanitizer report file(s) (above)"
  exit 1
fi
if [ "$rc" != 0 ]; then
  echo "tsan_server: FAILED: the node tests failed (exit $rc) under the TSan binary"
  exit 1
fi
echo "tsan_server: no ThreadSanitizer report, $((SECONDS - start)) s"
