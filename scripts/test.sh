#!/usr/bin/env bash
# Installs, builds and runs every test: the release build, then the ASan/UBSan build.
# Set TINYSERVE_SKIP_ASAN=1 to run only the release suite, TINYSERVE_SKIP_FUZZ=1 to skip the fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
ctest --preset release
if [ "${TINYSERVE_SKIP_ASAN:-0}" != 1 ]; then
  cmake --preset asan >/dev/null
  cmake --build --preset asan -j"$(nproc)"
  ctest --preset asan -LE no_asan
fi
[ "${TINYSERVE_SKIP_FUZZ:-0}" = 1 ] || bash scripts/fuzz.sh  # libFuzzer targets, 30 s each
