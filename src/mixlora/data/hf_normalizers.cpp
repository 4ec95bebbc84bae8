#include "mixlora/data/hf_normalizers.h"

#include "mixlora/data/hf_json.h"
#include "mixlora/data/hf_regex.h"
#include "mixlora/data/hf_text.h"

#include <vector>

namespace mixlora::data::hf {

namespace {

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  void normalize(std::string& text) const override { text = normalize_unicode(text, form_); }

 private:
  NormalForm form_;
};

// Replaces every non-overlapping match of a literal or regex with `content`.
class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(const PatternSpec& pattern, std::string content, const std::string& where)
      : literal_(pattern.is_regex ? "" : pattern.text), content_(std::move(content)) {
    if (pattern.is_regex) regex_ = std::make_unique<Regex>(pattern.text, where + ".pattern");
  }
  void normalize(std::string& text) const override {
    const auto matches = regex_ ? regex_->find_all(text) : find_all_literal(text, literal_);
    if (matches.empty()) return;
    std::string out;
    out.reserve(text.size() + matches.size() * content_.size());
    size_t prev = 0;
    for (const auto& [begin, end] : matches) {
      out.append(text, prev, begin - prev);
      out += content_;
      prev = end;
    }
    out.append(text, prev, std::string::npos);
    text = std::move(out);
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

// Prepends `prefix` to non-empty text.
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& step : steps_) step->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& json, const std::string& where) {
  if (json.is_null()) return nullptr;
  const std::string type = component_type(json, where);
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKD);
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(read_pattern(json, where),
                                               require_string(json, "content", where), where);
  }
  if (type == "Prepend")
    return std::make_unique<PrependNormalizer>(require_string(json, "prepend", where));
  if (type == "Sequence") {
    const auto& list = require(json, "normalizers", where);
    if (!list.is_array())
      fail_input("{}.normalizers: expected an array, got {}", where, io::describe(list));
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_normalizer(list[i], fmt::format("{}.normalizers[{}]", where, i));
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  fail_input(
      "{}: normalizer \"{}\" is not supported (supported: NFC, NFD, NFKC, NFKD, Replace, Prepend, "
      "Sequence)",
      where, type);
}

}  // namespace mixlora::data::hf
