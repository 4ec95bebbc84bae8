// lora/dropout_mask: the parallel fill against its scalar reference, its statistics against
// Bernoulli(1 - p), and its determinism (seeded by the generator, independent of threads).
#include "mixlora/lora/dropout_mask.h"
#include "mixlora/lora/lora.h"

#include "catch.h"
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>

using namespace mixlora;

namespace {

at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

}  // namespace

TEST_CASE("dropout mask equals its scalar reference element by element", "[lora][dropout]") {
  const double p = 0.05;
  auto generator = seeded(7);
  // The mask consumes one 64-bit draw: the seed the reference is given.
  const uint64_t seed = seeded(7).get<at::CPUGeneratorImpl>()->random64();
  const auto mask = lora::dropout_scale_mask({300, 257}, p, generator);
  const auto flat = mask.reshape({-1});
  const float* values = flat.data_ptr<float>();
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  int64_t mismatches = 0;
  for (int64_t i = 0; i < flat.numel(); ++i) {
    mismatches +=
        values[i] != (lora::dropout_keeps(seed, static_cast<uint64_t>(i), p) ? scale : 0.0f);
  }
  CHECK(mismatches == 0);
}

TEST_CASE("dropout mask keeps 1 - p of the elements, independently", "[lora][dropout]") {
  for (double p : {0.05, 0.3, 0.5}) {
    INFO("p = " << p);
    const int64_t n = 1 << 21;
    const auto mask = lora::dropout_scale_mask({n}, p, seeded(11));
    const auto keep = mask.gt(0).to(at::kDouble);
    // Binomial: the kept fraction within 5 standard deviations of 1 - p.
    const double sigma = std::sqrt(p * (1.0 - p) / static_cast<double>(n));
    CHECK(std::abs(keep.mean().item<double>() - (1.0 - p)) < 5.0 * sigma);
    // Neighbours independent: P(keep i and keep i+1) = (1 - p)^2, and rows of a 2-D mask too.
    const double both = (keep.slice(0, 0, n - 1) * keep.slice(0, 1, n)).mean().item<double>();
    CHECK(std::abs(both - (1.0 - p) * (1.0 - p)) < 5.0 * sigma);
    // Kept values rescale by 1 / (1 - p) so that the mask's mean is 1.
    CHECK(mask.max().item<double>() == Approx(1.0 / (1.0 - p)).epsilon(1e-6));
    CHECK(std::abs(mask.to(at::kDouble).mean().item<double>() - 1.0) < 5.0 * sigma / (1.0 - p));
  }
}

TEST_CASE("dropout masks follow the generator and not the thread count", "[lora][dropout]") {
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one_thread = lora::dropout_scale_mask({512, 1024}, 0.1, seeded(3));
  at::set_num_threads(2);
  const auto two_threads = lora::dropout_scale_mask({512, 1024}, 0.1, seeded(3));
  at::set_num_threads(threads);
  CHECK(at::equal(one_thread, two_threads));
  // Successive masks from one generator differ; so do masks of two seeds.
  auto generator = seeded(3);
  const auto first = lora::dropout_scale_mask({4096}, 0.1, generator);
  const auto second = lora::dropout_scale_mask({4096}, 0.1, generator);
  CHECK(!at::equal(first, second));
  CHECK(at::equal(first, one_thread.reshape({-1}).slice(0, 0, 4096)));
  CHECK(!at::equal(first, lora::dropout_scale_mask({4096}, 0.1, seeded(4))));
  // lora::dropout applies it: x * mask.
  const auto x = at::randn({64, 32});
  CHECK(at::allclose(lora::dropout(x, 0.1, seeded(5)),
                     x * lora::dropout_scale_mask({64, 32}, 0.1, seeded(5))));
}
