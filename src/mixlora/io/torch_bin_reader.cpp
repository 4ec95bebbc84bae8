#include "mixlora/io/torch_bin_reader.h"

#include "mixlora/common/error.h"
#include "mixlora/io/restricted_pickle.h"

#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

// Storage bytes are taken as-is: torch.save writes the host's order, and we check it says "little".
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "torch .bin import assumes a little-endian host");

namespace mixlora::io {
namespace {

// LibTorch's MemoryReadAdapter copies without a bounds check; the zip reader is handed this one.
class BoundedReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedReader(std::string_view bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    const size_t count = std::min<uint64_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, count);
    return count;
  }

 private:
  std::string_view bytes_;
};

std::string record_text(caffe2::serialize::PyTorchStreamReader& zip, const std::string& name) {
  auto [data, size] = zip.getRecord(name);
  return std::string(static_cast<const char*>(data.get()), size);
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> load_torch_bin_bytes(std::string_view bytes,
                                                                     const std::string& source) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  try {
    caffe2::serialize::PyTorchStreamReader zip(std::make_shared<BoundedReader>(bytes));
    if (!zip.hasRecord("data.pkl"))
      fail_input("{}: no data.pkl record (not a torch.save file)", source);
    if (zip.hasRecord("byteorder")) {
      const auto order = record_text(zip, "byteorder");
      if (order != "little")
        fail_input("{}: byteorder '{}' (only little-endian files are read)", source, order);
    }
    const auto pickle = record_text(zip, "data.pkl");
    const auto records = parse_state_dict_pickle(pickle, source + ":data.pkl");
    std::map<std::string, at::Tensor> storages;  // storage key -> flat tensor
    for (const auto& r : records) {
      auto it = storages.find(r.storage_key);
      if (it == storages.end()) {
        const std::string name = "data/" + r.storage_key;
        if (!zip.hasRecord(name))
          fail_input("{}: tensor '{}' needs record '{}', which is missing", source, r.name, name);
        auto [data, size] = zip.getRecord(name);
        const auto element = static_cast<int64_t>(c10::elementSize(r.dtype));
        int64_t expected = 0;
        if (__builtin_mul_overflow(r.storage_numel, element, &expected) ||
            static_cast<uint64_t>(expected) != size) {
          fail_input("{}: record '{}' holds {} bytes but tensor '{}' claims {} elements of {}",
                     source, name, size, r.name, r.storage_numel, c10::toString(r.dtype));
        }
        auto flat = at::empty({r.storage_numel}, at::TensorOptions(r.dtype));
        if (size) std::memcpy(flat.data_ptr(), data.get(), size);
        it = storages.emplace(r.storage_key, flat).first;
      } else if (it->second.scalar_type() != r.dtype || it->second.numel() != r.storage_numel) {
        fail_input("{}: storage '{}' is read as two different types or sizes", source,
                   r.storage_key);
      }
      out.emplace_back(r.name, it->second.as_strided(r.sizes, r.strides, r.storage_offset)
                                   .clone(at::MemoryFormat::Contiguous));
    }
  } catch (const c10::Error& e) {
    fail_input("{}: not a readable torch.save zip archive ({})", source,
               e.what_without_backtrace());
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> load_torch_bin(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input("{}: cannot open", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail_input("{}: read error", path);
  return load_torch_bin_bytes(buffer.str(), path);
}

}  // namespace mixlora::io
