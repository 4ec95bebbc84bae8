// UTF-8 and Unicode helpers of the tokenizer.json pipeline (hf_tokenizer.h). Unicode facts
// (normal forms, categories) come from libutf8proc; regexes from libpcre2 (hf_regex.h).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace mixlora::data::hf {

// Byte length of the UTF-8 sequence that starts with `lead` (1 for a stray byte).
inline size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

// The code point at `pos` of valid UTF-8 and its byte length.
char32_t decode_utf8(std::string_view text, size_t pos, size_t* length);
void append_utf8(std::string& out, char32_t cp);

// True when `text` is valid UTF-8 (what Rust's &str and Python's str guarantee).
bool is_valid_utf8(std::string_view text);
// Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or npos.
size_t invalid_utf8_offset(std::string_view text);
// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Unicode White_Space (Rust char::is_whitespace).
bool is_whitespace(char32_t cp);

// Normal forms through utf8proc; input must be valid UTF-8.
enum class NormalForm { NFC, NFD, NFKC, NFKD };
std::string normalize_unicode(std::string_view text, NormalForm form);

// GPT-2's byte-to-character table (ByteLevel): printable bytes map to themselves, the others
// to U+0100 onwards. byte_to_utf8()[b] is the UTF-8 of the character for byte b.
const std::array<std::string, 256>& byte_to_utf8();
// The inverse: the byte of a ByteLevel character, or -1.
int char_to_byte(char32_t cp);

}  // namespace mixlora::data::hf
