// Forward parity with transformers (docs/training-parity.md): tests/reference/forward_reference.py
// builds tiny random-weight LLaMA (untied head, llama3 rope scaling), Mistral (explicit head_dim,
// sliding window shorter than the batch) and Qwen2 (q/k/v biases, tied head) models offline with
// save_pretrained, and writes their logits on a right-padded batch and a greedy continuation. We
// load the same directories: logits within 1e-4 (relative to the largest), greedy ids equal.
#include "mixlora/generate/generator.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/model/base_model.h"
#include "mixlora/model/decoder.h"

#include "catch.h"
#include <torch/csrc/autograd/grad_mode.h>

#include "cli_runner.h"
#include "test_helpers.h"

#include <cstdlib>

using namespace mixlora;

TEST_CASE(
    "LLaMA, Mistral and Qwen2 forwards equal transformers' (tests/reference/forward_reference.py)",
    "[model][parity][reference]") {
  const auto python = test::reference_python_or_skip();
  if (python.empty()) return;
  test::TempDir dir;
  const auto log = dir / "reference.log";
  const auto command = fmt::format(
      "{} {} {} >{} 2>&1", test::shell_quote(python),
      test::shell_quote(MIXLORA_TEST_SOURCE_DIR "/tests/reference/forward_reference.py"),
      test::shell_quote(dir.str()), test::shell_quote(log));
  const int status = std::system(command.c_str());
  INFO(test::slurp(log));
  REQUIRE(status == 0);
  torch::NoGradGuard no_grad;
  for (const std::string name : {"llama", "mistral", "qwen2"}) {
    INFO("model " << name);
    const auto model_dir = dir / name;
    const auto model = model::load_base_model(model_dir, at::kFloat, c10::Device(c10::kCPU));
    const auto reference = io::SafeTensorsFile::open(model_dir + "/reference.safetensors");
    const model::Decoder decoder(model);
    const auto mask = reference.load("attention_mask");
    const auto logits = decoder.logits(decoder.hidden_states(reference.load("input_ids"), mask)) *
                        mask.unsqueeze(-1).to(at::kFloat);
    const auto expected = reference.load("logits");
    const double error =
        (logits - expected).abs().max().item<double>() / expected.abs().max().item<double>();
    INFO("logits: max error relative to max |logit| " << error);
    CHECK(error < 1e-4);
    std::cout << fmt::format("forward parity {}: logits max relative error {:.1e}\n", name, error);

    const auto prompt = reference.load("prompt");
    const auto greedy = reference.load("greedy");
    generate::GenerationOptions options;
    options.sampling.temperature = 0.0;
    options.max_new_tokens = greedy.numel();
    options.eos_token_id = model.config.eos_token_id;
    const auto ids = generate::generate(
        decoder, {prompt.data_ptr<int64_t>(), prompt.data_ptr<int64_t>() + prompt.numel()},
        options);
    CHECK(ids == std::vector<int64_t>(greedy.data_ptr<int64_t>(),
                                      greedy.data_ptr<int64_t>() + greedy.numel()));
  }
}
