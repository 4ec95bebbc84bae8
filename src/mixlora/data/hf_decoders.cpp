#include "mixlora/data/hf_decoders.h"

#include "mixlora/data/hf_json.h"
#include "mixlora/data/hf_regex.h"
#include "mixlora/data/hf_text.h"

namespace mixlora::data::hf {

namespace {

// Bytes back from GPT-2's characters; a token with any other character passes as its UTF-8
// bytes (added tokens such as "<|eot_id|>" are plain ASCII and map to themselves anyway).
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& token : tokens) {
      const size_t mark = bytes.size();
      bool mapped = true;
      for (size_t pos = 0; pos < token.size();) {
        size_t length = 0;
        const int byte = char_to_byte(decode_utf8(token, pos, &length));
        if (byte < 0) {
          mapped = false;
          break;
        }
        bytes += static_cast<char>(byte);
        pos += length;
      }
      if (!mapped) {
        bytes.resize(mark);
        bytes += token;
      }
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(const PatternSpec& pattern, std::string content, const std::string& where)
      : literal_(pattern.is_regex ? "" : pattern.text), content_(std::move(content)) {
    if (pattern.is_regex) regex_ = std::make_unique<Regex>(pattern.text, where + ".pattern");
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& token : tokens) {
      const auto matches = regex_ ? regex_->find_all(token) : find_all_literal(token, literal_);
      if (matches.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (const auto& [begin, end] : matches) {
        out.append(token, prev, begin - prev);
        out += content_;
        prev = end;
      }
      out.append(token, prev, std::string::npos);
      token = std::move(out);
    }
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte of a "<0xNN>" token, or -1. Rust's u8::from_str_radix also takes "+N".
int fallback_byte(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  const int low = hex_value(token[4]);
  if (low < 0) return -1;
  if (token[3] == '+') return low;
  const int high = hex_value(token[3]);
  return high < 0 ? -1 : high * 16 + low;
}

// Runs of "<0xNN>" tokens become their UTF-8 text, or one U+FFFD per byte when invalid.
class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (auto& token : tokens) {
      const int byte = fallback_byte(token);
      if (byte >= 0) {
        pending += static_cast<char>(byte);
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const auto& token : tokens) joined += token;
    tokens.assign(1, std::move(joined));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& token : tokens) {
      std::vector<std::pair<size_t, size_t>> chars;  // (offset, length)
      for (size_t pos = 0; pos < token.size();) {
        const size_t length =
            std::min(utf8_length(static_cast<unsigned char>(token[pos])), token.size() - pos);
        chars.emplace_back(pos, length);
        pos += length;
      }
      auto is_content = [&](size_t i) {
        return token.compare(chars[i].first, chars[i].second, content_) == 0;
      };
      size_t start_cut = 0;
      for (size_t i = 0; i < start_ && i < chars.size(); ++i) {
        if (!is_content(i)) break;
        start_cut = i + 1;
      }
      size_t stop_cut = chars.size();
      for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
        const size_t index = chars.size() - i - 1;
        if (!is_content(index)) break;
        stop_cut = index;
      }
      if (stop_cut <= start_cut) {
        token.clear();
        continue;
      }
      const size_t begin = start_cut < chars.size() ? chars[start_cut].first : token.size();
      const size_t end = stop_cut < chars.size() ? chars[stop_cut].first : token.size();
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

// The replacement character becomes a space; in the first token it is dropped when the
// pre-tokenizer prepends one.
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drop_first)
      : replacement_(std::move(replacement)), drop_first_(drop_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string with = i == 0 && drop_first_ ? "" : " ";
      std::string out;
      const auto& token = tokens[i];
      size_t prev = 0;
      for (const auto& [begin, end] : find_all_literal(token, replacement_)) {
        out.append(token, prev, begin - prev);
        out += with;
        prev = end;
      }
      out.append(token, prev, std::string::npos);
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool drop_first_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

size_t read_count(const nlohmann::json& json, const char* key, const std::string& where) {
  const auto& value = require(json, key, where);
  if (!value.is_number_unsigned())
    fail_input("{}.{}: expected a count >= 0, got {}", where, key, io::describe(value));
  return value.get<size_t>();
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& json, const std::string& where) {
  if (json.is_null()) return nullptr;
  const std::string type = component_type(json, where);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(read_pattern(json, where),
                                            require_string(json, "content", where), where);
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    const std::string content = require_string(json, "content", where);
    if (content.empty() || utf8_length(static_cast<unsigned char>(content[0])) != content.size()) {
      fail_input("{}.content: expected one character, got \"{}\"", where, content);
    }
    return std::make_unique<StripDecoder>(content, read_count(json, "start", where),
                                          read_count(json, "stop", where));
  }
  if (type == "Metaspace") {
    const std::string replacement = require_string(json, "replacement", where);
    bool drop_first = true;
    if (auto scheme = io::get_string(json, "prepend_scheme", where)) {
      drop_first = *scheme != "never";
    } else if (auto add = io::get_bool(json, "add_prefix_space", where)) {
      drop_first = *add;
    }
    return std::make_unique<MetaspaceDecoder>(replacement, drop_first);
  }
  if (type == "Sequence") {
    const auto& list = require(json, "decoders", where);
    if (!list.is_array())
      fail_input("{}.decoders: expected an array, got {}", where, io::describe(list));
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_decoder(list[i], fmt::format("{}.decoders[{}]", where, i));
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  fail_input(
      "{}: decoder \"{}\" is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, "
      "Strip, "
      "Metaspace, Sequence)",
      where, type);
}

}  // namespace mixlora::data::hf
