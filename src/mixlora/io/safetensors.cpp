#include "mixlora/io/safetensors.h"

#include "mixlora/common/error.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/io/json_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <unordered_map>

// Tensor bytes are used as-is: the format is little-endian and so is every target we build for.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "SafeTensors I/O assumes a little-endian host");

namespace mixlora::io {
namespace {

using Json = nlohmann::ordered_json;  // keeps header order, so tensors() is in file order

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  size_t size;
  at::ScalarType scalar;
};

constexpr std::array<DTypeEntry, 9> kDTypes{{
    {DType::F32, "F32", 4, at::kFloat},
    {DType::F16, "F16", 2, at::kHalf},
    {DType::BF16, "BF16", 2, at::kBFloat16},
    {DType::F64, "F64", 8, at::kDouble},
    {DType::I64, "I64", 8, at::kLong},
    {DType::I32, "I32", 4, at::kInt},
    {DType::I8, "I8", 1, at::kChar},
    {DType::U8, "U8", 1, at::kByte},
    {DType::BOOL, "BOOL", 1, at::kBool},
}};

const DTypeEntry& entry_of(DType dtype) { return kDTypes[static_cast<size_t>(dtype)]; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& e : kDTypes)
    if (e.name == name) return e.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_scalar(at::ScalarType scalar) {
  for (const auto& e : kDTypes)
    if (e.scalar == scalar) return e.dtype;
  return std::nullopt;
}

std::string all_dtype_names() {
  std::vector<std::string_view> names;
  for (const auto& e : kDTypes) names.push_back(e.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

// The JSON value as the user wrote it, shortened so an error stays one readable line.
std::string brief(const Json& value) {
  std::string text = value.dump();
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

// nlohmann's what() starts with "[json.exception.parse_error.101] "; the user needs the rest.
std::string json_error_text(const std::exception& e) {
  std::string text = e.what();
  const auto bracket = text.find("] ");
  return text.rfind("[json.exception.", 0) == 0 && bracket != std::string::npos
             ? text.substr(bracket + 2)
             : text;
}

// A read-only mapping of a whole file, unmapped when the last owner goes away.
class Mapping {
 public:
  Mapping(const std::string& path, size_t size, int fd) : size_(size) {
    void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED)
      fail_input("{}: cannot mmap {} bytes: {}", path, size, std::strerror(errno));
    data_ = static_cast<const uint8_t*>(addr);
  }
  ~Mapping() { ::munmap(const_cast<uint8_t*>(data_), size_); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

uint64_t read_le_u64(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// Header parsing: every check names the file and, where there is one, the tensor.
class HeaderParser {
 public:
  HeaderParser(const std::string& path, uint64_t data_size) : path_(path), data_size_(data_size) {}

  void parse(std::string_view text, std::vector<TensorInfo>& tensors,
             std::map<std::string, std::string>& metadata) const {
    const Json header = parse_json(text);
    if (!header.is_object())
      fail_input("{}: header is a JSON {}, expected an object mapping tensor names to entries",
                 path_, header.type_name());
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__")
        metadata = parse_metadata(entry);
      else
        tensors.push_back(parse_tensor(name, entry));
    }
    check_no_overlap(tensors);
  }

 private:
  Json parse_json(std::string_view text) const {
    // nlohmann keeps the last of duplicate keys silently; a duplicated tensor name is corruption.
    std::set<std::string> seen;
    std::string duplicate;
    const Json::parser_callback_t track_keys = [&](int depth, Json::parse_event_t event,
                                                   Json& parsed) {
      if (event == Json::parse_event_t::key && depth == 1 && parsed.is_string() &&
          !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
        duplicate = parsed.get<std::string>();
      return true;
    };
    check_json_depth(text, path_);
    Json header;
    try {
      header = Json::parse(text.begin(), text.end(), track_keys);
    } catch (const Json::exception& e) {
      fail_input("{}: header is not valid JSON ({}); not a SafeTensors file, or a corrupt one",
                 path_, escape_unprintable(json_error_text(e)));
    }
    if (!duplicate.empty())
      fail_input("{}: tensor '{}' appears twice in the header", path_, duplicate);
    return header;
  }

  std::map<std::string, std::string> parse_metadata(const Json& entry) const {
    if (!entry.is_object())
      fail_input("{}: __metadata__ is a JSON {}, expected an object of strings", path_,
                 entry.type_name());
    std::map<std::string, std::string> metadata;
    for (const auto& [key, value] : entry.items()) {
      if (!value.is_string())
        fail_input("{}: __metadata__ key '{}' is {}, expected a string", path_, key, brief(value));
      metadata[key] = value.get<std::string>();
    }
    return metadata;
  }

  TensorInfo parse_tensor(const std::string& name, const Json& entry) const {
    if (!entry.is_object())
      fail_input(
          "{}: tensor '{}': entry is {}, expected an object with dtype, shape and data_offsets",
          path_, name, brief(entry));
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(field)) fail_input("{}: tensor '{}': missing \"{}\"", path_, name, field);

    TensorInfo info;
    info.name = name;
    info.dtype = parse_dtype(name, entry["dtype"]);
    info.shape = parse_shape(name, entry["shape"]);
    std::tie(info.begin, info.end) = parse_offsets(name, entry["data_offsets"]);

    const uint64_t have = info.end - info.begin;
    const auto need = byte_size(info.shape, info.dtype);
    if (!need || *need != have)
      fail_input("{}: tensor '{}': data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {}",
                 path_, name, info.begin, info.end, have, info.shape, dtype_name(info.dtype),
                 need ? std::to_string(*need) : std::string("more than 2^64"));
    return info;
  }

  DType parse_dtype(const std::string& name, const Json& value) const {
    const auto dtype = value.is_string() ? dtype_from_name(value.get<std::string>()) : std::nullopt;
    if (!dtype)
      fail_input("{}: tensor '{}': unknown dtype {} (expected one of {})", path_, name,
                 brief(value), all_dtype_names());
    return *dtype;
  }

  std::vector<int64_t> parse_shape(const std::string& name, const Json& value) const {
    if (!value.is_array())
      fail_input("{}: tensor '{}': shape is {}, expected an array of non-negative integers", path_,
                 name, brief(value));
    std::vector<int64_t> shape;
    for (const auto& dim : value) {
      if (!dim.is_number_unsigned() || dim.get<uint64_t>() > uint64_t(INT64_MAX))
        fail_input("{}: tensor '{}': shape {} has dimension {}, expected a non-negative integer",
                   path_, name, brief(value), brief(dim));
      shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
    }
    return shape;
  }

  std::pair<uint64_t, uint64_t> parse_offsets(const std::string& name, const Json& value) const {
    if (!value.is_array() || value.size() != 2 || !value[0].is_number_unsigned() ||
        !value[1].is_number_unsigned())
      fail_input(
          "{}: tensor '{}': data_offsets is {}, expected [begin, end] with non-negative integers",
          path_, name, brief(value));
    const auto begin = value[0].get<uint64_t>();
    const auto end = value[1].get<uint64_t>();
    if (begin > end)
      fail_input("{}: tensor '{}': data_offsets [{}, {}] has begin after end", path_, name, begin,
                 end);
    if (end > data_size_)
      fail_input(
          "{}: tensor '{}': data_offsets [{}, {}] run past the {}-byte data section (truncated "
          "file?)",
          path_, name, begin, end, data_size_);
    return {begin, end};
  }

  static std::optional<uint64_t> byte_size(const std::vector<int64_t>& shape, DType dtype) {
    uint64_t bytes = dtype_size(dtype);
    for (int64_t dim : shape)
      if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) return std::nullopt;
    return bytes;
  }

  void check_no_overlap(const std::vector<TensorInfo>& tensors) const {
    std::vector<const TensorInfo*> by_offset;
    for (const auto& t : tensors)
      if (t.begin < t.end) by_offset.push_back(&t);  // an empty tensor owns no bytes
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
    const TensorInfo* furthest = nullptr;  // the tensor reaching furthest so far
    for (const TensorInfo* t : by_offset) {
      if (furthest && t->begin < furthest->end)
        fail_input("{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' at [{}, {}]", path_,
                   t->name, t->begin, t->end, furthest->name, furthest->begin, furthest->end);
      if (!furthest || t->end > furthest->end) furthest = t;
    }
  }

  const std::string& path_;
  uint64_t data_size_;
};

}  // namespace

std::string_view dtype_name(DType dtype) { return entry_of(dtype).name; }
size_t dtype_size(DType dtype) { return entry_of(dtype).size; }
at::ScalarType scalar_type(DType dtype) { return entry_of(dtype).scalar; }

struct SafeTensorsFile::State {
  std::string path;
  std::unique_ptr<Mapping> mapping;
  const uint8_t* data = nullptr;  // start of the data section inside the mapping
  std::vector<TensorInfo> tensors;
  std::unordered_map<std::string, size_t> index;
  std::map<std::string, std::string> metadata;
};

SafeTensorsFile::SafeTensorsFile(std::shared_ptr<const State> state) : state_(std::move(state)) {}

SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
  auto state = std::make_shared<State>();
  state->path = path;

  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail_input("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail_input("{}: cannot stat: {}", path, std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    fail_input("{}: not a regular file, expected a .safetensors file", path);
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    fail_input(
        "{}: file is {} bytes, expected at least the 8-byte header length (empty or truncated "
        "file?)",
        path, file_size);

  state->mapping = std::make_unique<Mapping>(path, file_size, fd.get());
  const uint8_t* bytes = state->mapping->data();
  const uint64_t header_size = read_le_u64(bytes);
  if (header_size > kMaxHeaderBytes)
    fail_input(
        "{}: header length {} bytes exceeds the {}-byte limit (corrupt file, or not SafeTensors?)",
        path, header_size, kMaxHeaderBytes);
  if (header_size > file_size - 8)
    fail_input("{}: header length {} bytes runs past the end of the {}-byte file (truncated file?)",
               path, header_size, file_size);

  state->data = bytes + 8 + header_size;
  const std::string_view header(reinterpret_cast<const char*>(bytes + 8), header_size);
  HeaderParser(path, file_size - 8 - header_size).parse(header, state->tensors, state->metadata);
  for (size_t i = 0; i < state->tensors.size(); ++i)
    state->index.emplace(state->tensors[i].name, i);
  return SafeTensorsFile(std::move(state));
}

const std::string& SafeTensorsFile::path() const { return state_->path; }
const std::vector<TensorInfo>& SafeTensorsFile::tensors() const { return state_->tensors; }
const std::map<std::string, std::string>& SafeTensorsFile::metadata() const {
  return state_->metadata;
}

const TensorInfo* SafeTensorsFile::find(const std::string& name) const {
  const auto it = state_->index.find(name);
  return it == state_->index.end() ? nullptr : &state_->tensors[it->second];
}

at::Tensor SafeTensorsFile::load(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (!info) fail_input("{}: no tensor '{}' in this file", path(), name);
  at::Tensor tensor = at::empty(info->shape, at::TensorOptions().dtype(scalar_type(info->dtype)));
  if (info->end > info->begin)
    std::memcpy(tensor.data_ptr(), state_->data + info->begin, info->end - info->begin);
  return tensor;
}

// ---------------------------------------------------------------------------------------------
// Writer

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;

  std::vector<at::Tensor> contiguous;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__")
      fail_runtime("{}: '__metadata__' is reserved and cannot name a tensor", path);
    if (!names.insert(name).second) fail_runtime("{}: tensor '{}' given twice", path, name);
    if (!tensor.defined()) fail_runtime("{}: tensor '{}' is undefined", path, name);
    const auto dtype = dtype_from_scalar(tensor.scalar_type());
    if (!dtype)
      fail_runtime(
          "{}: tensor '{}' has dtype {}, which SafeTensors cannot hold (expected one of {})", path,
          name, c10::toString(tensor.scalar_type()), all_dtype_names());
    contiguous.push_back(tensor.detach().to(at::kCPU).contiguous());
    const uint64_t size = contiguous.back().nbytes();
    header[name] = {{"dtype", std::string(dtype_name(*dtype))},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + size}}};
    offset += size;
  }

  // Spaces pad the header so the data section starts 8-byte aligned, as the Python library does.
  std::string header_text = header.dump();
  header_text.resize((header_text.size() + 7) / 8 * 8, ' ');
  std::array<uint8_t, 8> header_size{};
  for (size_t i = 0; i < 8; ++i)
    header_size[i] = static_cast<uint8_t>(uint64_t(header_text.size()) >> (8 * i));

  AtomicFile file(path);
  file.write(header_size.data(), header_size.size());
  file.write(header_text.data(), header_text.size());
  for (const auto& tensor : contiguous)
    if (tensor.nbytes() > 0) file.write(tensor.data_ptr(), tensor.nbytes());
  file.commit();
}

}  // namespace mixlora::io
