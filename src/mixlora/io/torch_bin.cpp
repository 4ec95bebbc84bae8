#include "mixlora/io/torch_bin.h"

#include "mixlora/common/error.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/io/pickle_writer.h"
#include "mixlora/io/zip_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string_view>
#include <utility>

// Tensor bytes go out as-is and the archive says "little".
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "torch .bin export assumes a little-endian host");

namespace mixlora::io {
namespace {

// The archive folder every record lives in; torch.save names it after the file, or "archive"
// when saving to a buffer. Readers take whatever the first record's folder is.
constexpr std::string_view kArchive = "archive/";

struct StorageClass {
  at::ScalarType scalar;
  std::string_view name;  // a global of module `torch`, allowed by weights_only=True
};

constexpr std::array<StorageClass, 10> kStorageClasses{{
    {at::kFloat, "FloatStorage"},
    {at::kDouble, "DoubleStorage"},
    {at::kBFloat16, "BFloat16Storage"},
    {at::kHalf, "HalfStorage"},
    {at::kLong, "LongStorage"},
    {at::kInt, "IntStorage"},
    {at::kShort, "ShortStorage"},
    {at::kChar, "CharStorage"},
    {at::kByte, "ByteStorage"},
    {at::kBool, "BoolStorage"},
}};

const StorageClass* storage_class(at::ScalarType scalar) {
  for (const auto& entry : kStorageClasses)
    if (entry.scalar == scalar) return &entry;
  return nullptr;
}

void int_tuple(PickleWriter& pickle, const std::vector<int64_t>& values) {
  if (values.empty()) return pickle.empty_tuple();
  pickle.mark();
  for (const int64_t v : values) pickle.integer(v);
  pickle.tuple_from_mark();
}

void empty_ordered_dict(PickleWriter& pickle) {
  pickle.global("collections", "OrderedDict");
  pickle.empty_tuple();
  pickle.reduce();
}

// The data.pkl of torch.save(state_dict): tensor i reads its bytes from record data/<i>.
std::string state_dict_pickle(const std::vector<std::string>& names,
                              const std::vector<at::Tensor>& tensors) {
  PickleWriter pickle;
  empty_ordered_dict(pickle);
  if (!names.empty()) pickle.mark();
  for (size_t i = 0; i < names.size(); ++i) {
    const at::Tensor& t = tensors[i];
    pickle.string(names[i]);
    pickle.global("torch._utils", "_rebuild_tensor_v2");
    pickle.mark();
    {  // storage: persistent id ('storage', torch.<T>Storage, key, location, numel)
      pickle.mark();
      pickle.string("storage");
      pickle.global("torch", storage_class(t.scalar_type())->name);
      pickle.string(std::to_string(i));
      pickle.string("cpu");
      pickle.integer(t.numel());
      pickle.tuple_from_mark();
      pickle.persistent_id();
    }
    pickle.integer(0);  // storage offset: each tensor owns its record
    // Row-major strides of the contiguous copy, computed rather than read back: contiguous()
    // may keep odd strides on size-1 dimensions.
    std::vector<int64_t> sizes = t.sizes().vec(), strides(sizes.size());
    int64_t step = 1;
    for (size_t d = sizes.size(); d-- > 0;) {
      strides[d] = step;
      step *= std::max<int64_t>(sizes[d], 1);
    }
    int_tuple(pickle, sizes);
    int_tuple(pickle, strides);
    pickle.boolean(false);       // requires_grad
    empty_ordered_dict(pickle);  // backward hooks
    pickle.tuple_from_mark();
    pickle.reduce();
  }
  if (!names.empty()) pickle.set_items();
  return pickle.finish();
}

}  // namespace

void save_torch_bin(const std::string& path,
                    const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::vector<std::string> names;
  std::vector<at::Tensor> contiguous;
  std::set<std::string_view> seen;
  for (const auto& [name, tensor] : tensors) {
    if (!seen.insert(name).second) fail_runtime("{}: tensor '{}' given twice", path, name);
    if (!tensor.defined()) fail_runtime("{}: tensor '{}' is undefined", path, name);
    if (!storage_class(tensor.scalar_type())) {
      std::vector<std::string> supported;
      for (const auto& entry : kStorageClasses) supported.push_back(c10::toString(entry.scalar));
      fail_runtime(
          "{}: tensor '{}' has dtype {}, which the .bin export cannot hold (expected one of {})",
          path, name, c10::toString(tensor.scalar_type()), fmt::join(supported, ", "));
    }
    names.push_back(name);
    contiguous.push_back(tensor.detach().to(at::kCPU).contiguous());
  }
  const std::string pickle = state_dict_pickle(names, contiguous);

  AtomicFile file(path);
  StoredZipWriter zip([&file](const void* data, size_t size) { file.write(data, size); });
  const auto add = [&](const std::string& record, const void* data, size_t size) {
    try {
      zip.add(std::string(kArchive) + record, data, size);
    } catch (const std::length_error& e) {
      fail_runtime("{}: {}; save adapter_model.safetensors instead", path, e.what());
    }
  };
  // Record order as torch.save writes it: the pickle first, the version last.
  add("data.pkl", pickle.data(), pickle.size());
  add("byteorder", "little", 6);
  for (size_t i = 0; i < contiguous.size(); ++i)
    add(fmt::format("data/{}", i), contiguous[i].data_ptr(), contiguous[i].nbytes());
  add("version", "3\n", 2);
  try {
    zip.finish();
  } catch (const std::length_error& e) {
    fail_runtime("{}: {}; save adapter_model.safetensors instead", path, e.what());
  }
  file.commit();
}

}  // namespace mixlora::io
