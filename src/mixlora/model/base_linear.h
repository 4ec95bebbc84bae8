// Matmuls with frozen base weights, dtype-aware. LibTorch 1.13 multiplies bf16 on the CPU
// through oneDNN only when the CPU has AVX512BW/VL/DQ; elsewhere (AVX2 machines) it falls back
// to a reference loop about 13x slower than fp32 BLAS, and fp16 has no fast CPU kernel at all.
// There, low-precision operands are multiplied in fp32 and the result is cast back: the weights
// stay stored in low precision (memory), the speed is fp32's.
#pragma once

#include <ATen/ATen.h>

namespace mixlora::model {

// True when matmuls in `dtype` on `device` run on a native kernel (CUDA, fp32, or bf16 on a CPU
// with oneDNN's bf16 support).
bool fast_matmul(c10::Device device, c10::ScalarType dtype);

// x W^T (+ b) in the dtype of x. `weight` is frozen (no gradient) unless it requires grad, in
// which case this is plain at::linear. The fp32 fallback keeps no fp32 copy of W for backward.
at::Tensor base_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

// at::matmul for activations (attention scores), through fp32 where `fast_matmul` is false.
at::Tensor activation_matmul(const at::Tensor& a, const at::Tensor& b);

}  // namespace mixlora::model
