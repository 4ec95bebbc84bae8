// mixlora-generate: text or token-id generation from a base model (SPEC section 2).
#include "mixlora/adapters/adapter.h"
#include "mixlora/cli/app.h"
#include "mixlora/common/error.h"
#include "mixlora/data/tokenizer.h"
#include "mixlora/generate/generator.h"
#include "mixlora/model/base_model.h"

#include <filesystem>
#include <iostream>
#include <sstream>

namespace {

std::vector<int64_t> parse_ids(const std::string& text) {
  std::vector<int64_t> ids;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    const auto begin = item.find_first_not_of(" \t");
    const auto end = item.find_last_not_of(" \t");
    const std::string trimmed =
        begin == std::string::npos ? "" : item.substr(begin, end - begin + 1);
    if (trimmed.empty() || trimmed.find_first_not_of("0123456789") != std::string::npos ||
        trimmed.size() > 12) {
      mixlora::fail_input(
          "--prompt-ids: expected comma-separated token ids like 1,15043,3186, "
          "found '{}'",
          item);
    }
    ids.push_back(std::stoll(trimmed));
  }
  if (ids.empty()) mixlora::fail_input("--prompt-ids: no token ids given");
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Generate text or token ids with a LLaMA-family base model.", "mixlora-generate"};
  mixlora::cli::CommonOptions common;
  mixlora::cli::add_common_options(app, common);
  std::string base_model, adapter_dir, prompt, prompt_ids;
  mixlora::generate::GenerationOptions options;
  bool print_ids = false;
  app.add_option("--base-model", base_model, "Hugging Face model directory")->required();
  app.add_option("--adapter", adapter_dir, "LoRA / MixLoRA adapter directory");
  auto* text_option =
      app.add_option("--prompt", prompt, "prompt text (needs tokenizer.json or tokenizer.model)");
  auto* ids_option = app.add_option("--prompt-ids", prompt_ids, "prompt as token ids: 1,2,3");
  text_option->excludes(ids_option);
  app.add_option("--max-new-tokens", options.max_new_tokens, "tokens to generate")
      ->capture_default_str();
  app.add_option("--temperature", options.sampling.temperature, "0 = greedy")
      ->capture_default_str();
  app.add_option("--top-k", options.sampling.top_k, "keep the k most likely tokens (0 = off)")
      ->capture_default_str();
  app.add_option("--top-p", options.sampling.top_p, "nucleus sampling mass (1 = off)")
      ->capture_default_str();
  app.add_flag("--print-ids", print_ids, "print only the generated token ids on one line");

  return mixlora::cli::run_main(app, argc, argv, [&] {
    if (prompt.empty() == prompt_ids.empty()) {
      mixlora::fail_input("give exactly one of --prompt TEXT or --prompt-ids 1,2,3");
    }
    const auto runtime = mixlora::cli::apply_common_options(common);
    options.seed = common.seed;
    mixlora::generate::validate(options.sampling);

    // Tokenizer only when text goes in or comes out; stories260K-style models have none.
    std::optional<mixlora::data::Tokenizer> tokenizer;
    const bool has_tokenizer = mixlora::data::Tokenizer::model_dir_has_tokenizer(base_model);
    if (!prompt.empty() || (!print_ids && has_tokenizer)) {
      tokenizer = mixlora::data::Tokenizer::from_model_dir(base_model);
    }
    const auto model = mixlora::model::load_base_model(base_model, runtime.dtype, runtime.device);
    const mixlora::model::Decoder decoder(model);
    std::optional<mixlora::adapters::Adapter> adapter;
    std::optional<mixlora::adapters::AdapterHooks> hooks;
    if (!adapter_dir.empty()) {
      adapter = mixlora::adapters::Adapter::load(adapter_dir, model);
      hooks.emplace(std::vector<mixlora::adapters::AdapterSegment>{{&*adapter, 0, 1, c10::nullopt}},
                    at::Tensor(),
                    /*training=*/false);
      hooks->keep_records(false);
    }
    auto* active_hooks = hooks ? &*hooks : nullptr;
    const auto ids = prompt.empty()
                         ? parse_ids(prompt_ids)
                         : tokenizer->encode(prompt, tokenizer->add_bos_default(), false);
    options.eos_token_id = tokenizer ? tokenizer->eos_id() : model.config.eos_token_id;

    if (print_ids || !tokenizer) {
      const auto produced = mixlora::generate::generate(decoder, ids, options, active_hooks);
      std::cout << fmt::format("{}\n", fmt::join(produced, " "));
      return 0;
    }
    // Stream text: decode the whole continuation each step and print what is new, since one
    // token can complete a multi-byte character started by another.
    std::vector<int64_t> produced;
    std::string shown;
    std::cout << prompt << std::flush;
    mixlora::generate::generate(decoder, ids, options, active_hooks, [&](int64_t token) {
      produced.push_back(token);
      const std::string text = tokenizer->decode(produced);
      if (text.size() > shown.size() && text.compare(0, shown.size(), shown) == 0) {
        std::cout << text.substr(shown.size()) << std::flush;
        shown = text;
      }
    });
    std::cout << "\n";
    return 0;
  });
}
