#!/usr/bin/env bash
# The main job: install, build, then run the capacity stress test (quick profile) against the
# embedded server on the default dummy Qwen2.5-0.5B (Q8_0 weights, the usual CPU choice). Extra
# arguments go to `tinyserve bench serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
exec build/release/src/cli/tinyserve bench serve --dtype q8_0 --output-dir out/bench "$@"
