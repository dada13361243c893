#!/usr/bin/env bash
# clang-tidy 14 over the src/ files of a configured clang build (compile_commands.json), in
# parallel. Fails on any finding (WarningsAsErrors: '*') and on any compiler error, which
# includes the build's -Wthread-safety -Werror diagnostics: this is the thread-safety check of
# src/ (check_clang.py parses the files outside src/).
# Library files get every check of .clang-tidy. Tests (*_test.cc) get the checks that find bugs
# in test code (TEST_CHECKS below), not the ones (reserved identifiers, by-value parameters, ...)
# that matter in the product, not in its tests.
# Each module's library, its tests and the CLI are read as their unity files (the build's
# TINYSERVE_UNITY_BUILD; CMake includes each .cc in them by its absolute path, so findings are
# reported in the .cc files): most of clang-tidy's time is its matchers walking the standard
# library's, nlohmann's and gtest's declarations, once per unit. On 2 cores (Zen 4): 152 s in
# unity files, 565 s file by file. bugprone-suspicious-include is off there only: a unity
# file's #include of .cc files is its job. Files kept out of the unity files (the per-ISA
# kernels) are read on their own.
# Usage: check_tidy.sh BUILD_DIR [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:?usage: check_tidy.sh BUILD_DIR [JOBS]}"
JOBS="${2:-$(nproc)}"
TEST_CHECKS="-*,bugprone-use-after-move,bugprone-dangling-handle,bugprone-unused-raii,\
bugprone-unused-return-value,bugprone-suspicious-string-compare,bugprone-sizeof-expression,\
bugprone-string-constructor,bugprone-integer-division,bugprone-infinite-loop,\
bugprone-undefined-memory-manipulation,bugprone-suspicious-memset-usage,bugprone-fold-init-type,\
bugprone-inaccurate-erase,bugprone-misplaced-widening-cast,bugprone-assert-side-effect"
start=$SECONDS
log="$BUILD_DIR/clang-tidy.log"
: >"$log"
status=0
# run-clang-tidy prints every command it runs; keep only the findings. Its file arguments are
# regexes over the compile database's absolute paths.
build="$(cd "$BUILD_DIR" && pwd)"
if ! grep -q '/Unity/unity_' "$build/compile_commands.json"; then
  echo "check_tidy: $BUILD_DIR has no unity files: configure it with TINYSERVE_UNITY_BUILD=ON"
  exit 1
fi
units="$build/src/[a-z]+/CMakeFiles"
run-clang-tidy-14 -clang-tidy-binary clang-tidy-14 -p "$BUILD_DIR" -j "$JOBS" -quiet \
    -checks=-bugprone-suspicious-include "^$units/tinyserve(_[a-z]+)?\.dir/Unity/" \
    >>"$log" 2>&1 || status=1
run-clang-tidy-14 -clang-tidy-binary clang-tidy-14 -p "$BUILD_DIR" -j "$JOBS" -quiet \
    "^$PWD/src/.*(?<!_test)\.cc$" >>"$log" 2>&1 || status=1
run-clang-tidy-14 -clang-tidy-binary clang-tidy-14 -p "$BUILD_DIR" -j "$JOBS" -quiet \
    -checks="$TEST_CHECKS" "^$units/[a-z]+_test\.dir/Unity/" >>"$log" 2>&1 || status=1
if [ "$status" != 0 ]; then
  grep -E "(warning|error):" -A3 "$log" | grep -v "^clang-tidy-14 " || true
  echo "check_tidy: FAILED after $((SECONDS - start)) s (full log: $log)"
  exit 1
fi
echo "check_tidy: src/ clean, $((SECONDS - start)) s with -j$JOBS"
