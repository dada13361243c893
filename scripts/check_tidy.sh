#!/usr/bin/env bash
# clang-tidy 14 with the repository's .clang-tidy over the src/ files of a configured clang
# build (compile_commands.json), in parallel. Fails on any finding (WarningsAsErrors: '*').
# Usage: check_tidy.sh BUILD_DIR [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:?usage: check_tidy.sh BUILD_DIR [JOBS]}"
JOBS="${2:-$(nproc)}"
start=$SECONDS
# run-clang-tidy prints every command it runs; keep only the findings.
if ! run-clang-tidy-14 -clang-tidy-binary clang-tidy-14 -p "$BUILD_DIR" -j "$JOBS" -quiet "$PWD/src/" >"$BUILD_DIR/clang-tidy.log" 2>&1; then
  grep -E "(warning|error):" -A3 "$BUILD_DIR/clang-tidy.log" | grep -v "^clang-tidy-14 " || true
  echo "check_tidy: FAILED after $((SECONDS - start)) s (full log: $BUILD_DIR/clang-tidy.log)"
  exit 1
fi
echo "check_tidy: src/ clean, $((SECONDS - start)) s with -j$JOBS"
