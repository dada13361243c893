#!/usr/bin/env bash
# The main job: install, build, then run the capacity stress test (quick profile) against the
# embedded server on the default dummy Qwen2.5-0.5B (Q8_0 weights, the usual CPU choice). Extra
# arguments go to `tinyserve bench serve`. The quick profile warms the server up (3 requests) and
# sweeps the users automatically; open out/bench/report.html for the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
exec build/release/src/cli/tinyserve bench serve --dtype q8_0 --output-dir out/bench "$@"
