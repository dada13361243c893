#!/usr/bin/env bash
# CI: installs, checks, builds and runs every suite, then prints how long each step took.
#   static  the layer order (check_layers.py), clang-format (check_format.sh), clang-tidy over
#           src/ (check_tidy.sh, one unity file per module), whose clang 14 front end also fails
#           on the build's -Wthread-safety -Werror diagnostics, and clang 14 -fsyntax-only with
#           the same flags over the files outside src/ (check_clang.py)
#   release the release build and every test (ctest --preset release)
#   asan    ASan+UBSan build and every test not labelled no_asan
#   tsan    ThreadSanitizer build of the concurrent modules' tests (ctest --preset tsan) and of
#           tinyserve, then the server under concurrent node clients (tsan_server.sh). The
#           preset leaves out the OpenAI protocol suites (OpenAiApiTest, PromptLogprobsApiTest,
#           TokenIdsApiTest): one thread, no engine and no HTTP, so nothing for TSan to see, and
#           each of their 40 processes loads the Qwen tokenizer, ~7 s under TSan (334 s of the
#           step's 550 on a slow day). Release and ASan run them.
#   fuzz    libFuzzer targets, 30 s each (scripts/fuzz.sh)
# Skip parts with TINYSERVE_SKIP_STATIC=1, TINYSERVE_SKIP_ASAN=1, TINYSERVE_SKIP_TSAN=1,
# TINYSERVE_SKIP_FUZZ=1.
set -euo pipefail
cd "$(dirname "$0")/.."

# clang-format: 1 fails CI when a file differs from .clang-format; 0 only lists those files.
ENFORCE_CLANG_FORMAT=1

JOBS="$(nproc)"
timings=()
configure() { cmake --preset "$1" >/dev/null; }
step() {  # step NAME COMMAND...: runs it and records its wall time
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "=== test.sh: $name"
  "$@" || rc=$?
  timings+=("$(printf '%-16s %5d s' "$name" $((SECONDS - t0)))")
  return "$rc"
}
report() {
  echo "=== test.sh: time per step (wall, $JOBS cores)"
  printf '  %s\n' "${timings[@]}"
  echo "  total            $((SECONDS - start)) s"
}
start=$SECONDS
trap report EXIT

step setup bash scripts/setup.sh

format_ok=1
tidy_ok=1
if [ "${TINYSERVE_SKIP_STATIC:-0}" != 1 ]; then
  step layers python3 scripts/check_layers.py
  # Format and tidy failures are acted on at the end, so one run reports every other check too.
  step format bash scripts/check_format.sh || format_ok=0
  step clang-configure configure clang
  step clang-syntax python3 scripts/check_clang.py build/clang -j "$JOBS" --exclude '^src/|/Unity/'
  step clang-tidy bash scripts/check_tidy.sh build/clang "$JOBS" || tidy_ok=0
fi

step release-build bash -c "cmake --preset release >/dev/null && cmake --build --preset release -j$JOBS"
step release-tests ctest --preset release

if [ "${TINYSERVE_SKIP_ASAN:-0}" != 1 ]; then
  step asan-build bash -c "cmake --preset asan >/dev/null && cmake --build --preset asan -j$JOBS"
  step asan-tests ctest --preset asan -LE no_asan
fi

if [ "${TINYSERVE_SKIP_TSAN:-0}" != 1 ]; then
  # Only the test binaries of the modules where threads meet (the preset's label filter), and
  # the server binary for the concurrent-client run.
  step tsan-build bash -c "cmake --preset tsan >/dev/null && cmake --build --preset tsan -j$JOBS \
      --target util_test structured_test engine_test server_test tinyserve"
  step tsan-tests ctest --preset tsan
  step tsan-server bash scripts/tsan_server.sh build/tsan/src/cli/tinyserve
fi

if [ "${TINYSERVE_SKIP_FUZZ:-0}" != 1 ]; then
  step fuzz bash scripts/fuzz.sh
fi

failed=0
if [ "$tidy_ok" != 1 ]; then
  echo "test.sh: FAILED: clang-tidy findings in src/ (see the clang-tidy step above)"
  failed=1
fi
if [ "$format_ok" != 1 ]; then
  if [ "$ENFORCE_CLANG_FORMAT" = 1 ]; then
    echo "test.sh: FAILED: files differ from .clang-format (see the format step above)"
    failed=1
  else
    echo "test.sh: files differ from .clang-format (not enforced: ENFORCE_CLANG_FORMAT=0)"
  fi
fi
exit "$failed"
