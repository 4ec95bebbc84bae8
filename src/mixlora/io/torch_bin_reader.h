// Reading adapter_model.bin (torch.save format: MoE-PEFT's, the MixLoRA plugin's, ours) without
// unpickling: LibTorch's own zip reader (caffe2::serialize::PyTorchStreamReader) opens the
// container, restricted_pickle.h reads data.pkl as tensor records only, and each tensor is
// copied out of its storage record after checking the record's size against the pickle.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mixlora::io {

// The tensors of a torch.save'd {name: tensor} dict, in file order, as contiguous CPU tensors of
// their stored dtype. Anything else (a bad zip, another pickle, a short storage record) is an
// InputError naming `path`.
std::vector<std::pair<std::string, at::Tensor>> load_torch_bin(const std::string& path);

// The same from bytes in memory; `source` names them in errors.
std::vector<std::pair<std::string, at::Tensor>> load_torch_bin_bytes(std::string_view bytes,
                                                                     const std::string& source);

}  // namespace mixlora::io
