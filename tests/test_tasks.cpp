// Task losses (src/mixlora/tasks): the chunked causal-LM loss against the full computation.
#include "mixlora/data/sample.h"
#include "mixlora/tasks/causal_lm.h"
#include "mixlora/tasks/chunked_lm_loss.h"

#include "catch.h"
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

using namespace mixlora;

namespace {

double max_relative_error(const at::Tensor& got, const at::Tensor& expected) {
  return ((got - expected).abs().max() / expected.abs().max().clamp_min(1e-12)).item<double>();
}

struct LossCase {
  at::Tensor hidden, head, labels;
  LossCase(int64_t batch, int64_t steps, int64_t width, int64_t vocab) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    hidden = at::normal(0.0, 1.0, {batch, steps, width}, gen, at::TensorOptions(at::kFloat));
    head = at::normal(0.0, 0.5, {vocab, width}, gen, at::TensorOptions(at::kFloat));
    labels = at::randint(0, vocab, {batch, steps}, gen, at::TensorOptions(at::kLong));
    labels.narrow(1, 0, 3).fill_(data::kIgnoreIndex);             // an unscored prompt
    labels[1].narrow(0, steps - 4, 4).fill_(data::kIgnoreIndex);  // right padding
  }
  // Logits with a soft cap, so the chunked path is checked on more than a plain projection.
  at::Tensor logits(const at::Tensor& h) const {
    return 30.0 * at::tanh(at::linear(h, head) / 30.0);
  }
};

}  // namespace

TEST_CASE("chunked causal-LM loss equals the full computation in value and gradient", "[tasks]") {
  LossCase c(3, 11, 16, 97);
  const tasks::LogitsFn logits_of = [&](const at::Tensor& h) { return c.logits(h); };
  auto full_hidden = c.hidden.clone().requires_grad_(true);
  const auto full = tasks::causal_lm_loss(c.logits(full_hidden), c.labels);
  full.sum.backward();
  for (int64_t chunk : {1, 4, 7, 1000}) {
    INFO("chunk rows " << chunk);
    auto hidden = c.hidden.clone().requires_grad_(true);
    const auto chunked = tasks::chunked_causal_lm_loss(logits_of, hidden, c.labels, chunk);
    CHECK(chunked.count.item<int64_t>() == full.count.item<int64_t>());
    CHECK(std::abs(chunked.sum.item<double>() / full.sum.item<double>() - 1.0) < 1e-6);
    (chunked.mean() * 3.0).backward();  // a scaled loss scales the gradient
    CHECK(max_relative_error(hidden.grad(), full_hidden.grad() * 3.0 / full.count.item<double>()) <
          1e-6);
    // Positions whose next token is unscored get exactly no gradient.
    CHECK(hidden.grad()[0].narrow(0, 0, 2).abs().max().item<double>() == 0.0);
  }
  SECTION("scoring without gradients gives the same value") {
    torch::NoGradGuard no_grad;
    const auto scored = tasks::chunked_causal_lm_loss(logits_of, c.hidden, c.labels, 5);
    CHECK(std::abs(scored.sum.item<double>() / full.sum.item<double>() - 1.0) < 1e-6);
    CHECK(scored.count.item<int64_t>() == full.count.item<int64_t>());
  }
  SECTION("no labelled position: zero loss, zero count, a defined zero gradient") {
    auto hidden = c.hidden.clone().requires_grad_(true);
    const auto none = tasks::chunked_causal_lm_loss(logits_of, hidden,
                                                    at::full_like(c.labels, data::kIgnoreIndex), 4);
    CHECK(none.count.item<int64_t>() == 0);
    CHECK(none.sum.item<double>() == 0.0);
    none.mean().backward();
    CHECK(hidden.grad().abs().max().item<double>() == 0.0);
  }
}

TEST_CASE("chunk rows keep one chunk of fp32 logits near the byte budget", "[tasks]") {
  CHECK(tasks::lm_loss_chunk_rows(32000) == 524);  // 64 MiB / (4 * 32000)
  CHECK(tasks::lm_loss_chunk_rows(262144) == 64);
  CHECK(tasks::lm_loss_chunk_rows(1 << 30) == 1);  // never zero rows
  CHECK(tasks::lm_loss_chunk_rows(512, 4096) == 2);
}
