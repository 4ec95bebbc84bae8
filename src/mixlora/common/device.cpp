#include "mixlora/common/device.h"

#include "mixlora/common/error.h"

#include <ATen/Context.h>

namespace mixlora {

c10::Device parse_device(const std::string& text) {
  if (text.empty() || text == "auto") {
    return at::hasCUDA() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  }
  if (text == "cpu") return c10::Device(c10::kCPU);
  if (text.rfind("cuda", 0) == 0) {
    if (!at::hasCUDA()) {
      fail_input(
          "--device {}: this build of LibTorch has no CUDA device available (use --device cpu)",
          text);
    }
    if (text == "cuda") return c10::Device(c10::kCUDA, 0);
    if (text.size() > 5 && text[4] == ':') {
      const std::string index = text.substr(5);
      if (index.find_first_not_of("0123456789") == std::string::npos && index.size() < 4) {
        return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(std::stoi(index)));
      }
    }
  }
  fail_input("--device: expected cpu, cuda or cuda:N, got '{}'", text);
}

c10::Device rank_device(const std::string& device_flag, c10::Device parsed, int local_rank,
                        int64_t visible_gpus) {
  if (!parsed.is_cuda() || device_flag.find(':') != std::string::npos) return parsed;
  const int64_t gpus = visible_gpus > 0 ? visible_gpus : 1;
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank % gpus));
}

c10::ScalarType parse_dtype(const std::string& text) {
  if (text == "fp32" || text == "float32" || text == "float") return c10::kFloat;
  if (text == "bf16" || text == "bfloat16") return c10::kBFloat16;
  if (text == "fp16" || text == "float16" || text == "half") return c10::kHalf;
  fail_input("--dtype: expected fp32, bf16 or fp16, got '{}'", text);
}

std::string dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return "fp32";
    case c10::kBFloat16: return "bf16";
    case c10::kHalf: return "fp16";
    default: return c10::toString(dtype);
  }
}

}  // namespace mixlora
