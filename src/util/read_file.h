// A whole file read into a string (JSON and text files: tokenizer.json is 11 MB).
#pragma once

#include <string>

#include "util/status.h"

namespace tinyserve {

// NotFound when `path` cannot be opened; Internal when reading it fails midway.
StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace tinyserve
