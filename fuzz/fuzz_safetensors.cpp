// libFuzzer harness: the SafeTensors reader (header parsing and validation, then every tensor
// read). A bad file must be an InputError; no crash, no sanitizer report, no other exception.
#include "fuzz_input.h"
#include "mixlora/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = mixlora::fuzz::write_input(data, size, ".safetensors");
  mixlora::fuzz::expect_input_errors_only([&] {
    const auto file = mixlora::io::SafeTensorsFile::open(path);
    for (const auto& info : file.tensors()) {
      // Everything open() accepted must be loadable as the dtype and shape it claims.
      const auto t = file.load(info.name);
      if (t.numel() * static_cast<int64_t>(mixlora::io::dtype_size(info.dtype)) !=
          static_cast<int64_t>(info.end - info.begin))
        __builtin_trap();
    }
    (void)file.metadata();
  });
  return 0;
}
