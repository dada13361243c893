#include "cli/model_loader.h"

#include <fstream>
#include <sstream>

#include "util/paths.h"

namespace tinyserve::cli {

StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const Qwen2Model& model) {
  if (model.gguf() != nullptr) return Tokenizer::FromGguf(*model.gguf());
  if (!model.tokenizer_dir().empty()) return Tokenizer::FromDir(model.tokenizer_dir());
  return Tokenizer::Qwen25FromNpmDir(QwenTokenizerDir());
}

StatusOr<GenerationDefaults> LoadGenerationDefaults(const Qwen2Model& model,
                                                    const std::string& source) {
  if (source == "vllm") return GenerationDefaults{};
  if (source == "auto") {
    if (model.generation_defaults()) return *model.generation_defaults();
    if (model.tokenizer_dir().empty() && model.gguf() == nullptr)
      return GenerationDefaultsFromJson(QwenGenerationConfigJson());  // dummy:<preset>
    return GenerationDefaults{};
  }
  const std::string path = source + "/generation_config.json";
  std::ifstream in(path);
  if (!in) return NotFoundError("--generation-config: cannot read {}", path);
  std::stringstream text;
  text << in.rdbuf();
  auto defaults = GenerationDefaultsFromJson(text.str());
  if (!defaults.ok()) return defaults.status().WithPrefix(path);
  return defaults;
}

}  // namespace tinyserve::cli
