// Parsing of the --device and --dtype conventions shared by every executable.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace mixlora {

// "cpu", "cuda", "cuda:N" or "auto" (cuda when LibTorch sees a GPU, else cpu).
c10::Device parse_device(const std::string& text);

// The device of one data-parallel rank. `device_flag` is the --device text, `parsed` what
// parse_device made of it: a CUDA device given without an index ("cuda", "auto", "") means
// cuda:<local_rank modulo visible_gpus>, one GPU per rank on a node (parse_device alone would
// put every rank on cuda:0); cuda:N and cpu stay as given.
c10::Device rank_device(const std::string& device_flag, c10::Device parsed, int local_rank,
                        int64_t visible_gpus);

// "fp32" | "bf16" | "fp16" (also the torch names float32 / bfloat16 / float16).
c10::ScalarType parse_dtype(const std::string& text);

// The short name used in logs and reports: fp32, bf16, fp16.
std::string dtype_name(c10::ScalarType dtype);

}  // namespace mixlora
