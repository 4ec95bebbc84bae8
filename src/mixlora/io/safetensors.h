// SafeTensors files: a bounds-checked reader over a read-only mmap, and an atomic writer.
//
// Format (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}},
// then the data buffer; offsets are relative to the start of that buffer.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mixlora::io {

enum class DType { F32, F16, BF16, F64, I64, I32, I8, U8, BOOL };

std::string_view dtype_name(DType dtype);  // "F32", as written in the header
size_t dtype_size(DType dtype);            // bytes per element
at::ScalarType scalar_type(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte range in the data buffer
  uint64_t end = 0;
};

// Headers larger than this are refused before anything is parsed (the Python library uses
// the same limit): a corrupt length must not make us allocate gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

// An open, fully validated file. Cheap to copy: copies share one mapping.
// Errors (InputError) are one line: "PATH: tensor 'NAME': expected ..., found ...".
class SafeTensorsFile {
 public:
  static SafeTensorsFile open(const std::string& path);

  const std::string& path() const;
  const std::vector<TensorInfo>& tensors() const;         // in header order
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const std::map<std::string, std::string>& metadata() const;

  // A CPU tensor holding a copy of the bytes: it outlives this object, and writing to it
  // cannot fault on the read-only mapping. Throws InputError if `name` is absent.
  at::Tensor load(const std::string& name) const;

 private:
  struct State;
  explicit SafeTensorsFile(std::shared_ptr<const State> state);
  std::shared_ptr<const State> state_;
};

// Writes tensors (any device, any layout; saved as contiguous CPU copies) in the given order.
// Atomic: a crash or error never leaves a half-written `path`. Throws RuntimeError naming the
// path on I/O failure, a duplicate or reserved name, or a dtype SafeTensors cannot hold.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace mixlora::io
