// Parsing of the --device and --dtype conventions shared by every executable.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace mixlora {

// "cpu", "cuda", "cuda:N" or "auto" (cuda when LibTorch sees a GPU, else cpu).
c10::Device parse_device(const std::string& text);

// "fp32" | "bf16" | "fp16" (also the torch names float32 / bfloat16 / float16).
c10::ScalarType parse_dtype(const std::string& text);

// The short name used in logs and reports: fp32, bf16, fp16.
std::string dtype_name(c10::ScalarType dtype);

}  // namespace mixlora
