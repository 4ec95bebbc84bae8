#include "mixlora/lora/dropout_mask.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <cmath>
#include <mutex>

namespace mixlora::lora {

namespace {

// SplitMix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer whose outputs
// for consecutive inputs pass BigCrush; on a counter it is a counter-based generator.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;  // SplitMix64's counter increment

// Element i keeps when the upper 32 bits of mix64(seed + (i + 1) * golden) fall below this.
uint64_t keep_threshold(double p) {
  return static_cast<uint64_t>(std::llround((1.0 - p) * 4294967296.0));
}

uint64_t draw_seed(const c10::optional<at::Generator>& generator) {
  auto* gen = at::get_generator_or_default<at::CPUGeneratorImpl>(
      generator, at::detail::getDefaultCPUGenerator());
  std::lock_guard<std::mutex> lock(gen->mutex_);
  return gen->random64();
}

}  // namespace

bool dropout_keeps(uint64_t seed, uint64_t index, double p) {
  return (mix64(seed + (index + 1) * kGolden) >> 32) < keep_threshold(p);
}

at::Tensor dropout_scale_mask(at::IntArrayRef sizes, double p,
                              const c10::optional<at::Generator>& generator) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
  RECORD_FUNCTION("mixlora::dropout_mask", std::vector<c10::IValue>());  // named in profiles
  auto mask = at::empty(sizes, at::TensorOptions(at::kFloat));
  const uint64_t seed = draw_seed(generator);
  const uint64_t threshold = keep_threshold(p);
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  float* out = mask.data_ptr<float>();
  at::parallel_for(0, mask.numel(), /*grain_size=*/1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t bits = mix64(seed + (static_cast<uint64_t>(i) + 1) * kGolden) >> 32;
      out[i] = bits < threshold ? scale : 0.0f;
    }
  });
  return mask;
}

}  // namespace mixlora::lora
