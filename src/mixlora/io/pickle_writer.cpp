#include "mixlora/io/pickle_writer.h"

#include <limits>

namespace mixlora::io {
namespace {

// Opcode bytes, as named in CPython's Lib/pickle.py.
constexpr char kProto = '\x80';
constexpr char kGlobal = 'c';
constexpr char kMark = '(';
constexpr char kTuple = 't';
constexpr char kEmptyTuple = ')';
constexpr char kReduce = 'R';
constexpr char kBinPersId = 'Q';
constexpr char kSetItems = 'u';
constexpr char kBinInt = 'J';    // 4-byte signed
constexpr char kBinInt1 = 'K';   // 1-byte unsigned
constexpr char kBinInt2 = 'M';   // 2-byte unsigned
constexpr char kLong1 = '\x8a';  // 1-byte length, then two's complement little-endian
constexpr char kBinUnicode = 'X';
constexpr char kNewTrue = '\x88';
constexpr char kNewFalse = '\x89';
constexpr char kStop = '.';

}  // namespace

PickleWriter::PickleWriter() {
  op(kProto);
  bytes_.push_back('\x02');
}

void PickleWriter::le(uint64_t value, int size) {
  for (int i = 0; i < size; ++i) bytes_.push_back(static_cast<char>(value >> (8 * i)));
}

void PickleWriter::global(std::string_view module, std::string_view name) {
  op(kGlobal);
  bytes_.append(module).append(1, '\n').append(name).append(1, '\n');
}

void PickleWriter::mark() { op(kMark); }
void PickleWriter::tuple_from_mark() { op(kTuple); }
void PickleWriter::empty_tuple() { op(kEmptyTuple); }
void PickleWriter::reduce() { op(kReduce); }
void PickleWriter::persistent_id() { op(kBinPersId); }
void PickleWriter::set_items() { op(kSetItems); }
void PickleWriter::boolean(bool value) { op(value ? kNewTrue : kNewFalse); }

// The same choice Python's pickler makes, so sizes and strides of any magnitude round-trip.
void PickleWriter::integer(int64_t value) {
  if (value >= 0 && value <= 0xff) {
    op(kBinInt1);
    le(static_cast<uint64_t>(value), 1);
  } else if (value >= 0 && value <= 0xffff) {
    op(kBinInt2);
    le(static_cast<uint64_t>(value), 2);
  } else if (value >= std::numeric_limits<int32_t>::min() &&
             value <= std::numeric_limits<int32_t>::max()) {
    op(kBinInt);
    le(static_cast<uint64_t>(value), 4);
  } else {
    // Drop high bytes that only repeat the sign of the byte below them.
    const auto bits = static_cast<uint64_t>(value);
    int size = 8;
    while (size > 1) {
      const auto top = static_cast<uint8_t>(bits >> (8 * (size - 1)));
      const bool below_negative = (bits >> (8 * (size - 1) - 1)) & 1;
      if ((top == 0x00 && !below_negative) || (top == 0xff && below_negative))
        --size;
      else
        break;
    }
    op(kLong1);
    le(static_cast<uint64_t>(size), 1);
    le(bits, size);
  }
}

void PickleWriter::string(std::string_view utf8) {
  op(kBinUnicode);
  le(utf8.size(), 4);
  bytes_.append(utf8);
}

std::string PickleWriter::finish() {
  op(kStop);
  return std::move(bytes_);
}

}  // namespace mixlora::io
