// A ZIP archive writer for stored (uncompressed) records whose data starts 64-byte aligned,
// the container that torch.save writes and torch.load reads.
//
// Each local header carries the CRC-32 and sizes up front (no data descriptors) and pads its
// data to the alignment with an extra field tagged "FB", as PyTorch's PyTorchStreamWriter does;
// the central directory carries no extra fields. No ZIP64: an archive that would need it
// (4 GiB or more, or 65535 records or more) is refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mixlora::io {

uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);  // ZIP's CRC-32, chainable

class StoredZipWriter {
 public:
  // Receives the archive bytes in order; it must write them all or throw.
  using Sink = std::function<void(const void* data, size_t size)>;

  static constexpr size_t kAlignment = 64;  // PyTorch's kFieldAlignment

  explicit StoredZipWriter(Sink sink);

  // Appends one record. Throws std::length_error if the archive would need ZIP64.
  void add(const std::string& name, const void* data, size_t size);

  // Writes the central directory and end record; nothing may be added afterwards.
  void finish();

  uint64_t bytes_written() const { return offset_; }

 private:
  struct Entry {
    std::string name;
    uint32_t crc;
    uint32_t size;
    uint32_t header_offset;
  };

  void emit(const std::string& bytes);

  Sink sink_;
  uint64_t offset_ = 0;
  std::vector<Entry> entries_;
  bool finished_ = false;
};

}  // namespace mixlora::io
