#!/usr/bin/env bash
# Builds llama.cpp's own server (llama-server) for side-by-side runs with `tinyserve bench serve`
# / `bench compare`, from the llama.cpp source release that node-llama-cpp ships in node_modules
# (a git bundle: npm is the only registry here that carries llama.cpp, and apt has no
# llama-server). CPU only, tuned for this machine (GGML_NATIVE), no downloads. About 10 minutes
# on 2 cores; not part of the tests.
#
#   benchmarks/build_llama_server.sh [WORK_DIR]     (default: build/llama.cpp)
#   WORK_DIR/build/bin/llama-server -m MODEL.gguf -t 2 --port 8092
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=node_modules/node-llama-cpp/llama/gitRelease.bundle
work=${1:-build/llama.cpp}
if [[ ! -f $bundle ]]; then
  echo "build_llama_server: $bundle not found; run scripts/setup.sh (npm install) first" >&2
  exit 1
fi
if [[ ! -d $work/.git ]]; then
  git -c advice.detachedHead=false clone -q "$bundle" "$work"
fi
echo "llama.cpp $(git -C "$work" log -1 --format=%h) (node-llama-cpp's release" \
  "$(sed -n 's/.*"tag": "\(.*\)".*/\1/p' node_modules/node-llama-cpp/llama/llama.cpp.info.json))"
cmake -S "$work" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF > "$work/cmake.log"
cmake --build "$work/build" -j "$(nproc)" --target llama-server > "$work/build.log"
echo "built $work/build/bin/llama-server"
