#include "mixlora/io/zip_writer.h"

#include <fmt/format.h>

#include <array>
#include <stdexcept>
#include <utility>

namespace mixlora::io {
namespace {

constexpr uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr size_t kLocalHeaderSize = 30;
constexpr uint16_t kVersion = 20;           // 2.0: stored files in folders
constexpr uint16_t kDosDate = 0x0021;       // 1980-01-01, so archives are reproducible
constexpr uint64_t kMaxZip32 = 0xfffffffe;  // 0xffffffff means "see the ZIP64 record"
constexpr size_t kMaxEntries = 0xfffe;

// Little-endian field appenders.
void put16(std::string& out, uint64_t value) {
  for (int i = 0; i < 2; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}
void put32(std::string& out, uint64_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t n = 0; n < 256; ++n) {
    uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
  return table;
}

}  // namespace

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const auto* bytes = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ bytes[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

StoredZipWriter::StoredZipWriter(Sink sink) : sink_(std::move(sink)) {}

void StoredZipWriter::emit(const std::string& bytes) {
  sink_(bytes.data(), bytes.size());
  offset_ += bytes.size();
}

void StoredZipWriter::add(const std::string& name, const void* data, size_t size) {
  if (finished_) throw std::logic_error("StoredZipWriter::add after finish");
  if (entries_.size() >= kMaxEntries)
    throw std::length_error(
        fmt::format("more than {} records need ZIP64, which is not supported", kMaxEntries));

  // The extra field is "FB", its payload length, then 'Z' filler up to the aligned data start.
  const uint64_t unpadded = offset_ + kLocalHeaderSize + name.size() + 4;
  const uint64_t padding = (kAlignment - unpadded % kAlignment) % kAlignment;
  if (name.size() > 0xffff)
    throw std::length_error(fmt::format("record name '{}' is too long", name));
  if (unpadded + padding + size > kMaxZip32)
    throw std::length_error(fmt::format(
        "archive would exceed {} bytes and need ZIP64, which is not supported", kMaxZip32));

  const Entry entry{name, crc32(data, size), static_cast<uint32_t>(size),
                    static_cast<uint32_t>(offset_)};
  std::string header;
  put32(header, kLocalHeaderSignature);
  put16(header, kVersion);
  put16(header, 0);  // flags: sizes and CRC are known up front, names are ASCII
  put16(header, 0);  // method: stored
  put16(header, 0);  // time
  put16(header, kDosDate);
  put32(header, entry.crc);
  put32(header, entry.size);  // compressed size
  put32(header, entry.size);  // uncompressed size
  put16(header, name.size());
  put16(header, padding + 4);
  header += name;
  header += "FB";
  put16(header, padding);
  header.append(padding, 'Z');
  emit(header);
  if (size > 0) {
    sink_(data, size);
    offset_ += size;
  }
  entries_.push_back(entry);
}

void StoredZipWriter::finish() {
  if (finished_) throw std::logic_error("StoredZipWriter::finish called twice");
  const uint64_t directory_offset = offset_;
  std::string directory;
  for (const auto& e : entries_) {
    put32(directory, kCentralHeaderSignature);
    put16(directory, kVersion);  // made by
    put16(directory, kVersion);  // needed
    put16(directory, 0);         // flags
    put16(directory, 0);         // method
    put16(directory, 0);         // time
    put16(directory, kDosDate);
    put32(directory, e.crc);
    put32(directory, e.size);
    put32(directory, e.size);
    put16(directory, e.name.size());
    put16(directory, 0);  // extra length
    put16(directory, 0);  // comment length
    put16(directory, 0);  // disk number
    put16(directory, 0);  // internal attributes
    put32(directory, 0);  // external attributes
    put32(directory, e.header_offset);
    directory += e.name;
  }
  if (directory_offset + directory.size() > kMaxZip32)
    throw std::length_error(
        "central directory would end past 4 GiB and need ZIP64, which is not supported");

  std::string end;
  put32(end, kEndSignature);
  put16(end, 0);  // this disk
  put16(end, 0);  // disk with the directory
  put16(end, entries_.size());
  put16(end, entries_.size());
  put32(end, directory.size());
  put32(end, directory_offset);
  put16(end, 0);  // comment length
  emit(directory);
  emit(end);
  finished_ = true;
}

}  // namespace mixlora::io
