#include "tokenizer/tokenizer_json.h"

#include <fmt/format.h>

#include <cstdint>

namespace tinyserve {
namespace {

using JsonDom = nlohmann::json;

// nlohmann's SAX events: a DOM built as its own parser builds one (a stack of the open
// containers), except for the values of "vocab" and "merges" in the root's "model" object, which
// are read into the parts' arrays as they stream by.
class Reader final : public nlohmann::json_sax<JsonDom> {
 public:
  explicit Reader(TokenizerJsonParts* out) : out_(out) {}
  const std::string& error() const { return error_; }

  bool null() override { return Value(JsonDom()); }
  bool boolean(bool v) override { return Value(JsonDom(v)); }
  bool number_integer(number_integer_t v) override {
    // Non-negative integers arrive as number_unsigned: this one is negative.
    if (mode_ == Mode::kVocab) return Fail(fmt::format("vocab id {} out of range", v));
    return Value(JsonDom(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == Mode::kVocab) return VocabEntry(v);
    return Value(JsonDom(v));
  }
  bool number_float(number_float_t v, const string_t& /*text*/) override {
    return Value(JsonDom(v));
  }
  bool string(string_t& v) override {
    switch (mode_) {
      case Mode::kMerges:
        return MergeString(v);
      case Mode::kMergePair:
        if (pair_.size() == 2) return Fail("tokenizer.json: bad merge entry");
        pair_.push_back(std::move(v));
        return true;
      default:
        return Value(JsonDom(std::move(v)));
    }
  }
  bool binary(binary_t& /*v*/) override { return Fail("tokenizer.json: binary value"); }

  bool start_object(std::size_t /*size*/) override {
    if (mode_ == Mode::kDom && InModel() && key_ == "vocab") {
      out_->has_vocab = true;
      mode_ = Mode::kVocab;
      return true;
    }
    if (mode_ != Mode::kDom) return Value(JsonDom());  // the error of a non-id / non-merge value
    JsonDom* object = Insert(JsonDom::object());
    if (stack_.size() == 1 && stack_[0]->is_object() && key_ == "model") model_ = object;
    stack_.push_back(object);
    return true;
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kDom;
    } else {
      stack_.pop_back();
    }
    return true;
  }
  bool start_array(std::size_t /*size*/) override {
    if (mode_ == Mode::kDom && InModel() && key_ == "merges") {
      out_->has_merges = true;
      mode_ = Mode::kMerges;
      return true;
    }
    if (mode_ == Mode::kMerges) {
      pair_.clear();
      mode_ = Mode::kMergePair;
      return true;
    }
    if (mode_ != Mode::kDom) return Value(JsonDom());
    stack_.push_back(Insert(JsonDom::array()));
    return true;
  }
  bool end_array() override {
    if (mode_ == Mode::kMergePair) {
      if (pair_.size() != 2) return Fail("tokenizer.json: bad merge entry");
      out_->merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      mode_ = Mode::kMerges;
    } else if (mode_ == Mode::kMerges) {
      mode_ = Mode::kDom;
    } else {
      stack_.pop_back();
    }
    return true;
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) override {
    // ex.what() names the byte offset and what was expected there.
    return Fail(fmt::format("tokenizer.json is not valid JSON: {}", ex.what()));
  }

 private:
  enum class Mode { kDom, kVocab, kMerges, kMergePair };

  bool InModel() const { return model_ != nullptr && !stack_.empty() && stack_.back() == model_; }

  // A scalar (or, outside kDom, any value: then it is in the wrong place).
  bool Value(JsonDom&& v) {
    switch (mode_) {
      case Mode::kVocab:
        return Fail("tokenizer.json: bad vocab id");
      case Mode::kMerges:
      case Mode::kMergePair:
        return Fail("tokenizer.json: bad merge entry");
      case Mode::kDom:
        Insert(std::move(v));
        return true;
    }
    return false;
  }

  // Places v under the open container (under key_ in an object) or as the root.
  JsonDom* Insert(JsonDom&& v) {
    if (stack_.empty()) {
      out_->rest = std::move(v);
      return &out_->rest;
    }
    JsonDom* top = stack_.back();
    if (top->is_object()) {
      JsonDom& slot = (*top)[key_];
      slot = std::move(v);
      return &slot;
    }
    top->push_back(std::move(v));
    return &top->back();
  }

  bool VocabEntry(uint64_t id) {
    if (id > static_cast<uint64_t>(kMaxTokenId))
      return Fail(fmt::format("vocab id {} out of range", id));
    auto& vocab = out_->vocab;
    if (id >= vocab.size()) vocab.resize(id + 1);
    vocab[id] = std::move(key_);
    return true;
  }

  bool MergeString(const std::string& s) {
    const size_t space = s.find(' ', 1);
    if (space == std::string::npos) return Fail(fmt::format("bad merge '{}'", s));
    out_->merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    return true;
  }

  bool Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  TokenizerJsonParts* out_;
  std::vector<JsonDom*> stack_;  // open containers of the DOM, innermost last
  JsonDom* model_ = nullptr;     // the root's "model" object, once opened
  std::string key_;              // the last object key read
  Mode mode_ = Mode::kDom;
  std::vector<std::string> pair_;  // the strings of a ["a", "b"] merge being read
  std::string error_;
};

}  // namespace

StatusOr<TokenizerJsonParts> ReadTokenizerJson(std::string_view text) {
  TokenizerJsonParts parts;
  Reader reader(&parts);
  if (!JsonDom::sax_parse(text.begin(), text.end(), &reader)) {
    return InvalidArgumentError(
        "{}", reader.error().empty() ? "tokenizer.json: parse failed" : reader.error());
  }
  return parts;
}

}  // namespace tinyserve
