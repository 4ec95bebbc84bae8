// Inverted-dropout masks, fast on the CPU. LibTorch 1.13 without MKL draws bernoulli_ one element
// at a time from the generator on one thread: 15% of a MixLoRA training step (docs/benchmarks.md).
// Here one 64-bit seed is drawn from the generator per mask and element i's keep decision is a
// hash of (seed, i): counter-based like Philox, so the mask is the same for any thread count
// and is filled by every core.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace mixlora::lora {

// fp32 tensor of `sizes` on the CPU holding 0 (dropped, probability p) or 1 / (1 - p) (kept).
// Draws one 64-bit number from `generator` (the default CPU generator when none).
at::Tensor dropout_scale_mask(at::IntArrayRef sizes, double p,
                              const c10::optional<at::Generator>& generator);

// The keep decision of element `index` of the mask drawn with `seed`: the scalar reference the
// test compares the parallel fill with.
bool dropout_keeps(uint64_t seed, uint64_t index, double p);

}  // namespace mixlora::lora
