#include "mixlora/io/torch_bin.h"

#include "mixlora/common/error.h"
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
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "torch .bin export assumes a little-endian host");

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
std::string state_dict_pickle(const std::vector<std::string>& names, const std::vector<at::Tensor>& tensors) {
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
    pickle.boolean(false);  // requires_grad
    empty_ordered_dict(pickle);  // backward hooks
    pickle.tuple_from_mark();
    pickle.reduce();
  }
  if (!names.empty()) pickle.set_items();
  return pickle.finish();
}

// A temporary file renamed over `path` on commit; removed if never committed.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path)
      : path_(path), temp_(fmt::format("{}.tmp.{}", path, ::getpid())),
        fd_(::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) {
    if (fd_ < 0) fail_runtime("{}: cannot create temporary file {}: {}", path_, temp_, std::strerror(errno));
  }
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    while (size > 0) {
      const ssize_t n = ::write(fd_, bytes, std::min<size_t>(size, 1u << 30));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail_runtime("{}: cannot write {}: {}", path_, temp_, std::strerror(n < 0 ? errno : EIO));
      bytes += n;
      size -= static_cast<size_t>(n);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) fail_runtime("{}: cannot fsync {}: {}", path_, temp_, std::strerror(errno));
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) fail_runtime("{}: cannot close {}: {}", path_, temp_, std::strerror(errno));
    if (::rename(temp_.c_str(), path_.c_str()) != 0)
      fail_runtime("{}: cannot rename {} into place: {}", path_, temp_, std::strerror(errno));
    committed_ = true;
    // Make the rename itself durable; best effort, the file is already complete.
    const auto slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
  }

 private:
  std::string path_;
  std::string temp_;
  int fd_;
  bool committed_ = false;
};

}  // namespace

void save_torch_bin(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::vector<std::string> names;
  std::vector<at::Tensor> contiguous;
  std::set<std::string_view> seen;
  for (const auto& [name, tensor] : tensors) {
    if (!seen.insert(name).second) fail_runtime("{}: tensor '{}' given twice", path, name);
    if (!tensor.defined()) fail_runtime("{}: tensor '{}' is undefined", path, name);
    if (!storage_class(tensor.scalar_type())) {
      std::vector<std::string> supported;
      for (const auto& entry : kStorageClasses) supported.push_back(c10::toString(entry.scalar));
      fail_runtime("{}: tensor '{}' has dtype {}, which the .bin export cannot hold (expected one of {})", path,
                   name, c10::toString(tensor.scalar_type()), fmt::join(supported, ", "));
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
