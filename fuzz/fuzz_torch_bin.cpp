// libFuzzer harness: the restricted adapter_model.bin reader (LibTorch's zip reader, then our
// pickle reader of tensor records, then the storage copies). A bad file must be an InputError;
// no crash, no sanitizer report, no other exception.
#include "fuzz_input.h"
#include "mixlora/io/restricted_pickle.h"
#include "mixlora/io/torch_bin_reader.h"

#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  mixlora::fuzz::expect_input_errors_only([&] {
    // The pickle reader alone, on raw bytes: most mutations of a zip never reach it otherwise.
    for (const auto& t : mixlora::io::parse_state_dict_pickle(bytes, "fuzz.pkl")) {
      if (t.sizes.size() != t.strides.size()) __builtin_trap();
    }
  });
  mixlora::fuzz::expect_input_errors_only([&] {
    for (const auto& [name, tensor] : mixlora::io::load_torch_bin_bytes(bytes, "fuzz.bin")) {
      if (!tensor.is_contiguous()) __builtin_trap();
    }
  });
  return 0;
}
