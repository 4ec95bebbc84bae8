#include "mixlora/io/restricted_pickle.h"

#include "mixlora/common/error.h"

#include <array>
#include <cstring>
#include <memory>
#include <set>
#include <utility>

namespace mixlora::io {
namespace {

// Opcode bytes, as named in CPython's Lib/pickle.py.
enum Op : uint8_t {
  kProto = 0x80,
  kFrame = 0x95,
  kStop = '.',
  kMark = '(',
  kEmptyDict = '}',
  kEmptyTuple = ')',
  kTuple = 't',
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kBinUnicode = 'X',
  kShortBinUnicode = 0x8c,
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kLong1 = 0x8a,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kNone = 'N',
  kGlobal = 'c',
  kStackGlobal = 0x93,
  kReduce = 'R',
  kBinPersId = 'Q',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kMemoize = 0x94,
  kSetItem = 's',
  kSetItems = 'u',
  kBuild = 'b',
};

struct StorageClass {
  std::string_view name;
  c10::ScalarType dtype;
};
constexpr std::array<StorageClass, 10> kStorageClasses{{
    {"torch.FloatStorage", c10::ScalarType::Float},
    {"torch.DoubleStorage", c10::ScalarType::Double},
    {"torch.BFloat16Storage", c10::ScalarType::BFloat16},
    {"torch.HalfStorage", c10::ScalarType::Half},
    {"torch.LongStorage", c10::ScalarType::Long},
    {"torch.IntStorage", c10::ScalarType::Int},
    {"torch.ShortStorage", c10::ScalarType::Short},
    {"torch.CharStorage", c10::ScalarType::Char},
    {"torch.ByteStorage", c10::ScalarType::Byte},
    {"torch.BoolStorage", c10::ScalarType::Bool},
}};

// The callables a state dict of tensors needs; nothing else may be named by a GLOBAL.
constexpr std::string_view kOrderedDict = "collections.OrderedDict";
constexpr std::string_view kRebuildTensor = "torch._utils._rebuild_tensor_v2";
constexpr std::string_view kRebuildParameter = "torch._utils._rebuild_parameter";

bool allowed_global(std::string_view name) {
  if (name == kOrderedDict || name == kRebuildTensor || name == kRebuildParameter) return true;
  for (const auto& s : kStorageClasses)
    if (s.name == name) return true;
  return false;
}

enum class Kind { none, boolean, integer, string, tuple, dict, global, storage, tensor };

struct Node;
using Value = std::shared_ptr<Node>;

struct Node {
  Kind kind = Kind::none;
  int64_t integer = 0;       // integer, boolean
  std::string text;          // string; global "module.name"
  std::vector<Value> items;  // tuple items; dict: key, value, key, value, ...
  PickledTensor tensor;      // storage (key, dtype, numel) and tensor
};

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::none: return "None";
    case Kind::boolean: return "a bool";
    case Kind::integer: return "an int";
    case Kind::string: return "a string";
    case Kind::tuple: return "a tuple";
    case Kind::dict: return "a dict";
    case Kind::global: return "a global";
    case Kind::storage: return "a storage";
    case Kind::tensor: return "a tensor";
  }
  return "?";
}

class Machine {
 public:
  Machine(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  // Dicts may end up holding themselves (BINGET of a dict, then SETITEM into it); clearing them
  // all breaks every such cycle, since a cycle needs a mutable container.
  ~Machine() {
    for (auto& d : dicts_)
      if (auto dict = d.lock()) dict->items.clear();
  }

  Value run() {
    while (true) {
      if (pos_ >= bytes_.size()) fail("the pickle ends without a STOP opcode");
      op_pos_ = pos_;
      const auto op = static_cast<uint8_t>(bytes_[pos_++]);
      switch (op) {
        case kProto: {
          const auto version = read_uint(1);
          if (version < 2 || version > 5)
            fail("pickle protocol " + std::to_string(version) + " (torch.save writes 2)");
          break;
        }
        case kFrame: (void)read_uint(8); break;  // a length hint only
        case kStop: {
          if (!marks_.empty() || stack_.size() != 1)
            fail("STOP with more than one object on the stack");
          return stack_.back();
        }
        case kMark: marks_.push_back(stack_.size()); break;
        case kEmptyDict: push(make_dict()); break;
        case kEmptyTuple: push(make(Kind::tuple)); break;
        case kTuple: {
          auto items = pop_mark();
          auto t = make(Kind::tuple);
          t->items = std::move(items);
          push(t);
          break;
        }
        case kTuple1:
        case kTuple2:
        case kTuple3: {
          const size_t n = op - kTuple1 + 1;
          need(n);
          auto t = make(Kind::tuple);
          t->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(t);
          break;
        }
        case kBinUnicode: push(make_string(read_uint(4))); break;
        case kShortBinUnicode: push(make_string(read_uint(1))); break;
        case kBinInt: push(make_int(static_cast<int32_t>(read_uint(4)))); break;
        case kBinInt1: push(make_int(static_cast<int64_t>(read_uint(1)))); break;
        case kBinInt2: push(make_int(static_cast<int64_t>(read_uint(2)))); break;
        case kLong1: push(make_int(read_long1())); break;
        case kNewTrue:
        case kNewFalse: {
          auto b = make(Kind::boolean);
          b->integer = op == kNewTrue;
          push(b);
          break;
        }
        case kNone: push(make(Kind::none)); break;
        case kGlobal: {
          auto module = read_line();
          auto name = read_line();
          push(make_global(module + "." + name));
          break;
        }
        case kStackGlobal: {
          auto name = pop(Kind::string);
          auto module = pop(Kind::string);
          push(make_global(module->text + "." + name->text));
          break;
        }
        case kReduce: {
          auto args = pop(Kind::tuple);
          auto callable = pop(Kind::global);
          push(call(callable->text, *args));
          break;
        }
        case kBinPersId: push(storage(*pop(Kind::tuple))); break;
        case kBinPut: memo_put(read_uint(1)); break;
        case kLongBinPut: memo_put(read_uint(4)); break;
        case kMemoize: memo_put(memo_.size()); break;
        case kBinGet: memo_get(read_uint(1)); break;
        case kLongBinGet: memo_get(read_uint(4)); break;
        case kSetItem: {
          need(3);
          auto value = pop_any();
          auto key = pop_any();
          set_item(*top(Kind::dict), key, value);
          break;
        }
        case kSetItems: {
          auto items = pop_mark();
          if (items.size() % 2 != 0) fail("SETITEMS with an odd number of items");
          auto& dict = *top(Kind::dict);
          for (size_t i = 0; i < items.size(); i += 2) set_item(dict, items[i], items[i + 1]);
          break;
        }
        case kBuild: {
          // OrderedDict state (state_dict()'s _metadata): dropped, it describes no tensor.
          auto state = pop_any();
          if (state->kind != Kind::dict && state->kind != Kind::none)
            fail("BUILD with " + std::string(kind_name(state->kind)));
          (void)top(Kind::dict);
          break;
        }
        default:
          fail(fmt::format("opcode 0x{:02x} is not one a torch.save state dict of tensors uses",
                           op));
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    fail_input(
        "{}: not a state dict of tensors (byte {}: {}); we read only tensor records, never "
        "general pickles: re-save it with torch.save({{name: tensor}}) or as safetensors",
        source_, op_pos_, what);
  }

  uint64_t read_uint(size_t n) {
    if (bytes_.size() - pos_ < n) fail("the pickle ends inside an opcode argument");
    uint64_t value = 0;
    for (size_t i = 0; i < n; ++i)
      value |= static_cast<uint64_t>(static_cast<uint8_t>(bytes_[pos_ + i])) << (8 * i);
    pos_ += n;
    return value;
  }

  int64_t read_long1() {
    const auto n = read_uint(1);
    if (n > 8) fail("an integer wider than 64 bits");
    if (n == 0) return 0;
    uint64_t value = read_uint(n);
    if (n < 8 && (value >> (8 * n - 1)) & 1) value |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(value);
  }

  std::string read_line() {
    const auto end = bytes_.find('\n', pos_);
    if (end == std::string_view::npos) fail("GLOBAL without its newline");
    std::string line(bytes_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return line;
  }

  Value make(Kind kind) {
    auto v = std::make_shared<Node>();
    v->kind = kind;
    return v;
  }
  Value make_dict() {
    auto d = make(Kind::dict);
    dicts_.push_back(d);
    return d;
  }
  Value make_int(int64_t value) {
    auto v = make(Kind::integer);
    v->integer = value;
    return v;
  }
  Value make_string(uint64_t length) {
    if (bytes_.size() - pos_ < length) fail("a string runs past the end of the pickle");
    auto v = make(Kind::string);
    v->text.assign(bytes_.substr(pos_, length));
    pos_ += length;
    return v;
  }
  Value make_global(const std::string& name) {
    if (!allowed_global(name)) fail("global '" + name + "' is not a tensor record");
    auto v = make(Kind::global);
    v->text = name;
    return v;
  }

  void push(Value v) { stack_.push_back(std::move(v)); }
  void need(size_t n) const {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + n) fail("an opcode finds too few objects on the stack");
  }
  Value pop_any() {
    need(1);
    auto v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Value pop(Kind kind) {
    auto v = pop_any();
    if (v->kind != kind)
      fail(fmt::format("expected {}, found {}", kind_name(kind), kind_name(v->kind)));
    return v;
  }
  Node* top(Kind kind) {
    need(1);
    if (stack_.back()->kind != kind) {
      fail(fmt::format("expected {}, found {}", kind_name(kind), kind_name(stack_.back()->kind)));
    }
    return stack_.back().get();
  }
  std::vector<Value> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Value> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }

  void memo_put(uint64_t index) {
    need(1);
    // Each stored object takes at least one byte of pickle: this bounds the memo by the input.
    if (index >= bytes_.size()) fail("a memo index out of range");
    if (index >= memo_.size()) memo_.resize(index + 1);
    memo_[index] = stack_.back();
  }
  void memo_get(uint64_t index) {
    if (index >= memo_.size() || !memo_[index]) fail("a memo index that was never stored");
    push(memo_[index]);
  }

  void set_item(Node& dict, const Value& key, const Value& value) {
    if (key->kind != Kind::string)
      fail(fmt::format("a dict key is {}, not a string", kind_name(key->kind)));
    dict.items.push_back(key);
    dict.items.push_back(value);
  }

  // ('storage', torch.<T>Storage, key, location, numel)
  Value storage(const Node& pid) {
    const auto& f = pid.items;
    if (f.size() != 5 || f[0]->kind != Kind::string || f[0]->text != "storage" ||
        f[1]->kind != Kind::global || f[2]->kind != Kind::string || f[3]->kind != Kind::string ||
        f[4]->kind != Kind::integer) {
      fail("a persistent id that is not ('storage', torch.<T>Storage, key, location, numel)");
    }
    const StorageClass* cls = nullptr;
    for (const auto& s : kStorageClasses)
      if (s.name == f[1]->text) cls = &s;
    if (!cls) fail("'" + f[1]->text + "' is not a storage type");
    if (f[4]->integer < 0) fail("a storage with a negative size");
    if (f[2]->text.empty() || f[2]->text.find_first_not_of("0123456789") != std::string::npos) {
      fail("storage key '" + f[2]->text + "' is not a record number");
    }
    auto v = make(Kind::storage);
    v->tensor.storage_key = f[2]->text;
    v->tensor.dtype = cls->dtype;
    v->tensor.storage_numel = f[4]->integer;
    return v;
  }

  std::vector<int64_t> int_tuple(const Value& v, const char* what) {
    if (v->kind != Kind::tuple) fail(std::string(what) + " is not a tuple");
    std::vector<int64_t> out;
    for (const auto& item : v->items) {
      if (item->kind != Kind::integer || item->integer < 0)
        fail(std::string(what) + " holds a non-negative int only");
      out.push_back(item->integer);
    }
    return out;
  }

  bool is_empty_hooks(const Value& v) { return v->kind == Kind::dict && v->items.empty(); }

  Value call(const std::string& callable, const Node& args) {
    const auto& a = args.items;
    if (callable == kOrderedDict) {
      if (!a.empty()) fail("collections.OrderedDict called with arguments");
      return make_dict();
    }
    if (callable == kRebuildParameter) {
      // (data, requires_grad, backward_hooks)
      if (a.size() != 3 || a[0]->kind != Kind::tensor || a[1]->kind != Kind::boolean ||
          !is_empty_hooks(a[2])) {
        fail("_rebuild_parameter arguments are not (tensor, bool, OrderedDict())");
      }
      return a[0];
    }
    if (callable == kRebuildTensor) {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if ((a.size() != 6 && a.size() != 7) || a[0]->kind != Kind::storage ||
          a[1]->kind != Kind::integer || a[4]->kind != Kind::boolean || !is_empty_hooks(a[5]) ||
          (a.size() == 7 && a[6]->kind != Kind::none && !is_empty_hooks(a[6]))) {
        fail(
            "_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, requires_grad, "
            "OrderedDict())");
      }
      auto t = make(Kind::tensor);
      t->tensor = a[0]->tensor;
      t->tensor.storage_offset = a[1]->integer;
      t->tensor.sizes = int_tuple(a[2], "a tensor size");
      t->tensor.strides = int_tuple(a[3], "a tensor stride");
      check_view(t->tensor);
      return t;
    }
    fail("'" + callable + "' is not callable here");
  }

  // The view must lie inside the storage the pickle claims (the caller checks the claim).
  void check_view(const PickledTensor& t) {
    if (t.sizes.size() != t.strides.size()) fail("a tensor whose size and stride differ in length");
    if (t.storage_offset < 0) fail("a negative storage offset");
    int64_t last = t.storage_offset;
    bool empty = false;
    for (size_t d = 0; d < t.sizes.size(); ++d) {
      if (t.sizes[d] == 0) empty = true;
      int64_t step = 0;
      if (__builtin_mul_overflow(t.sizes[d] == 0 ? 0 : t.sizes[d] - 1, t.strides[d], &step) ||
          __builtin_add_overflow(last, step, &last)) {
        fail("a tensor view too large to address");
      }
    }
    if (empty ? t.storage_offset > t.storage_numel : last >= t.storage_numel) {
      fail(fmt::format("a tensor view reaching element {} of a storage of {}", last,
                       t.storage_numel));
    }
  }

  std::string_view bytes_;
  const std::string& source_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::vector<Value> memo_;
  std::vector<std::weak_ptr<Node>> dicts_;
};

}  // namespace

std::vector<PickledTensor> parse_state_dict_pickle(std::string_view pickle,
                                                   const std::string& source) {
  Machine machine(pickle, source);
  const Value root = machine.run();
  if (root->kind != Kind::dict) {
    fail_input("{}: the pickle holds {}, not a dict of tensors (a torch.save state dict)", source,
               kind_name(root->kind));
  }
  std::vector<PickledTensor> tensors;
  std::set<std::string> names;
  for (size_t i = 0; i < root->items.size(); i += 2) {
    const auto& key = root->items[i]->text;
    const auto& value = root->items[i + 1];
    if (value->kind != Kind::tensor) {
      fail_input("{}: entry '{}' is {}, not a tensor (only tensor records are read)", source, key,
                 kind_name(value->kind));
    }
    if (!names.insert(key).second) fail_input("{}: tensor '{}' appears twice", source, key);
    tensors.push_back(value->tensor);
    tensors.back().name = key;
  }
  return tensors;
}

}  // namespace mixlora::io
