// Writing `adapter_model.bin`: a state dict that Python's torch.load(path, weights_only=True)
// reads, in PyTorch 1.13 and 2.x alike. (LibTorch's torch::pickle_save output is refused by
// weights_only=True; see DESIGN-NOTES.md.)
//
// Layout, as torch.save writes it: a ZIP archive of stored, 64-byte-aligned records
//   archive/data.pkl    pickle (protocol 2) of an OrderedDict name -> tensor, each tensor
//                       torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False,
//                       OrderedDict()) with storage the persistent id ('storage', torch.<T>Storage,
//                       '<i>', 'cpu', numel)
//   archive/byteorder   "little"  (2.x reads it and would byte-swap on a big-endian host)
//   archive/data/<i>    the bytes of the i-th tensor, contiguous
//   archive/version     "3\n"     (the format version that torch.save writes; both readers need it)
// Reading is torch_bin_reader.h: a restricted reader of tensor records, never general unpickling.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace mixlora::io {

// Writes the tensors (any device or layout; saved as contiguous CPU copies) in the given order.
// Supported dtypes: float32, float64, bfloat16, float16, int64, int32, int16, int8, uint8, bool.
// Atomic: writes `path.tmp.<pid>`, fsyncs, renames. Throws RuntimeError naming the path on a
// duplicate name, an undefined tensor, an unsupported dtype, an archive of 4 GiB or more, or an
// I/O failure; the temporary file is removed and `path` is left as it was.
void save_torch_bin(const std::string& path,
                    const std::vector<std::pair<std::string, at::Tensor>>& tensors);

}  // namespace mixlora::io
