#!/usr/bin/env bash
# Installs, builds and runs every test: the release build, then the ASan/UBSan build.
# Set TINYSERVE_SKIP_ASAN=1 to run only the release suite.
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
