#include "util/paths.h"

#include <cstdlib>

namespace tinyserve {

std::string CacheDir() {
  if (const char* c = std::getenv("TINYSERVE_CACHE"); c && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/tinyserve";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.cache/tinyserve";
}

std::string QwenTokenizerDir() { return CacheDir() + "/qwen-tokenizer"; }

}  // namespace tinyserve
