#!/usr/bin/env bash
# clang-tidy 14 over the src/ files of a configured clang build (compile_commands.json), in
# parallel. Fails on any finding (WarningsAsErrors: '*') and on any compiler error, which
# includes the build's -Wthread-safety -Werror diagnostics: this is the thread-safety check of
# src/ (check_clang.py parses the files outside src/).
# Library files get every check of .clang-tidy. Tests (*_test.cc) get the checks that find bugs
# in test code (TEST_CHECKS below): on the 60 test files the full set took 294 s of wall on 2
# cores (the subset: 150 s), walking gtest's and nlohmann's instantiations, for findings
# (reserved identifiers, by-value parameters, ...) that matter in the product, not in its tests.
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
run-clang-tidy-14 -clang-tidy-binary clang-tidy-14 -p "$BUILD_DIR" -j "$JOBS" -quiet \
    "^$PWD/src/.*(?<!_test)\.cc$" >>"$log" 2>&1 || status=1
run-clang-tidy-14 -clang-tidy-binary clang-tidy-14 -p "$BUILD_DIR" -j "$JOBS" -quiet \
    -checks="$TEST_CHECKS" "^$PWD/src/.*_test\.cc$" >>"$log" 2>&1 || status=1
if [ "$status" != 0 ]; then
  grep -E "(warning|error):" -A3 "$log" | grep -v "^clang-tidy-14 " || true
  echo "check_tidy: FAILED after $((SECONDS - start)) s (full log: $log)"
  exit 1
fi
echo "check_tidy: src/ clean, $((SECONDS - start)) s with -j$JOBS"
