// A restricted reader of the pickle inside a torch.save state dict (adapter_model.bin).
//
// It never unpickles: it runs a small stack machine over the opcodes that torch.save
// (protocols 2-4) writes for a dict of tensors and accepts exactly one shape of result:
//   {name: tensor}   dict or collections.OrderedDict, names strings, each tensor
//                    torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
//                    hooks[, metadata]), possibly wrapped in torch._utils._rebuild_parameter,
//                    its storage a persistent id ('storage', torch.<T>Storage, key, location,
//                    numel).
// The only callables it knows are those names plus collections.OrderedDict (called with no
// arguments); any other global, opcode or shape is an InputError naming the source and the byte
// offset. Nothing in the file can run code, allocate beyond its own size, or recurse.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mixlora::io {

// One tensor of the state dict: a strided view of storage record `data/<storage_key>`.
struct PickledTensor {
  std::string name;
  std::string storage_key;
  c10::ScalarType dtype = c10::ScalarType::Float;
  int64_t storage_numel = 0;  // elements the storage holds, as the pickle claims
  int64_t storage_offset = 0;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
};

// Parses `pickle` (the bytes of data.pkl); `source` names it in errors. Tensors come in file order.
// Checks that every view lies inside its storage's claimed element count; the caller checks the
// storage records themselves.
std::vector<PickledTensor> parse_state_dict_pickle(std::string_view pickle,
                                                   const std::string& source);

}  // namespace mixlora::io
