// tokenizer.json "normalizer": NFC/NFD/NFKC/NFKD, Replace, Prepend, Sequence (the Hugging Face
// tokenizers semantics on the text alone; offsets are not tracked). Anything else is an
// InputError naming the component.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace mixlora::data::hf {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// nullptr for a JSON null. `where` names the JSON path for messages.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& json, const std::string& where);

}  // namespace mixlora::data::hf
