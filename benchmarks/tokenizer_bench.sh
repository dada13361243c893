#!/usr/bin/env bash
# Tokenizer encode throughput, one thread, C++ vs @huggingface/tokenizers on the same text.
# Usage: benchmarks/tokenizer_bench.sh [BUILD_DIR] [SECONDS_PER_MEASUREMENT]
# Needs the tool built: cmake --build BUILD_DIR --target tool_tokenizer_tool
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$SRC/build/release}"
exec node "$SRC/benchmarks/tokenizer_bench.mjs" "$BUILD/tests/tool_tokenizer_tool" "$SRC" "${2:-2}"
