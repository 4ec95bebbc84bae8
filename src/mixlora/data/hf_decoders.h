// tokenizer.json "decoder": ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace,
// Sequence -- tokenizers' decode_chain on the list of token strings; the result is joined.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace mixlora::data::hf {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// nullptr for a JSON null (tokens are then joined with spaces, as tokenizers does).
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& json, const std::string& where);

}  // namespace mixlora::data::hf
