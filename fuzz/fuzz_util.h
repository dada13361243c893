// Helpers shared by the libFuzzer targets (fuzz/*_fuzzer.cc): fuzz input as a file (the model
// readers only open paths) and a small byte-level vocabulary for grammar matching. Header-only;
// fuzzers only, one thread.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "structured/vocabulary.h"

namespace tinyserve::fuzz {

// An in-memory file (memfd) rewritten with each input; path() opens it like a regular file.
class MemFile {
 public:
  MemFile() : fd_(memfd_create("tinyserve_fuzz", 0)) {
    if (fd_ < 0) std::abort();
  }
  ~MemFile() { close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;

  void Write(const uint8_t* data, size_t size) {
    if (ftruncate(fd_, 0) != 0 || pwrite(fd_, data, size, 0) != static_cast<ssize_t>(size)) {
      std::abort();
    }
  }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

// The 256 single bytes, EOS (256) and a few multi-byte tokens (so token sets have prefixes and
// uncertain tokens to check), like a tiny byte-level BPE vocabulary.
inline std::shared_ptr<const structured::Vocabulary> FuzzVocab() {
  static const std::shared_ptr<const structured::Vocabulary> vocab = [] {
    std::vector<std::string> tokens(257);
    for (int b = 0; b < 256; ++b) tokens[b] = std::string(1, static_cast<char>(b));
    for (const char* t : {"{\"", "\":", "\", \"", "\"}", "true", "false", "null", "aa", "aaaa",
                          "ab", "12", "0.", "[1", "],", "\\n", " \"", "\xC3\xA9"}) {
      tokens.push_back(t);
    }
    return *structured::Vocabulary::Build(std::move(tokens), {256});
  }();
  return vocab;
}

}  // namespace tinyserve::fuzz
