// mixlora-generate end to end: the acceptance command of the foundation issue and its bad inputs.
#include "cli_runner.h"

#include "mixlora/io/json_file.h"

#include "catch.h"

using mixlora::test::run_tool;
using mixlora::test::stories_dir;

TEST_CASE("mixlora-generate --prompt-ids prints the reference greedy ids", "[cli][generate]") {
  const auto fixture = mixlora::io::read_json_file(MIXLORA_TEST_SOURCE_DIR
                                                   "/tests/fixtures/stories260K_reference.json");
  for (const auto& run : fixture["greedy"]) {
    const auto prompt = run["prompt"].get<std::vector<int64_t>>();
    const auto expected = run["new_tokens"].get<std::vector<int64_t>>();
    const auto result = run_tool(fmt::format(
        "mixlora-generate --base-model {} --prompt-ids {} --max-new-tokens 64 --temperature 0 "
        "--print-ids --device cpu",
        stories_dir(), fmt::join(prompt, ",")));
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
    CHECK(result.out == fmt::format("{}\n", fmt::join(expected, " ")));
  }
}

TEST_CASE("mixlora-generate sampling is reproducible for a seed", "[cli][generate]") {
  auto sample = [](int seed) {
    return run_tool(
        fmt::format("mixlora-generate --base-model {} --prompt-ids 1 --max-new-tokens 32 "
                    "--temperature 0.9 --top-k 40 --top-p 0.9 --seed {} --print-ids",
                    stories_dir(), seed));
  };
  const auto a = sample(7), b = sample(7), c = sample(8);
  REQUIRE(a.exit_code == 0);
  CHECK(a.out == b.out);
  CHECK(a.out != c.out);
  CHECK(mixlora::test::count_lines(a.out) == 1);
}

TEST_CASE("mixlora-generate rejects bad input with exit code 2 and one line", "[cli][generate]") {
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"--base-model /nonexistent --prompt-ids 1", "/nonexistent: base model directory not found"},
      {"--base-model " + stories_dir() + " --prompt-ids 1,600",
       "prompt token 600 at position 1 is outside the vocabulary [0, 512)"},
      {"--base-model " + stories_dir() + " --prompt-ids 1,x",
       "--prompt-ids: expected comma-separated token ids"},
      {"--base-model " + stories_dir() + " --prompt hello", "tokenizer"},
      {"--base-model " + stories_dir() + " --prompt-ids 1 --top-p 0", "--top-p: must be in (0, 1]"},
      {"--base-model " + stories_dir() + " --prompt-ids 1 --dtype fp8",
       "--dtype: expected fp32, bf16 or fp16"},
      {"--base-model " + stories_dir() + " --prompt-ids " +
           fmt::format("{}", fmt::join(std::vector<int>(513, 1), ",")),
       "the prompt has 513 tokens but the model's context (max_position_embeddings) is 512"},
      {"--base-model " + stories_dir(), "give exactly one of --prompt TEXT or --prompt-ids"},
      {"--prompt-ids 1", "--base-model is required"},
  };
  for (const auto& c : cases) {
    const auto result = run_tool("mixlora-generate " + c.args);
    INFO(c.args << "\nstderr: " << result.err);
    CHECK(result.exit_code == 2);
    CHECK_THAT(result.err, Catch::Matchers::Contains(c.message));
    CHECK(mixlora::test::count_lines(result.err) == 1);
    CHECK(result.out.empty());
  }
}

TEST_CASE("mixlora-generate --help and --version exit 0", "[cli][generate]") {
  CHECK(run_tool("mixlora-generate --help").exit_code == 0);
  const auto version = run_tool("mixlora-generate --version");
  CHECK(version.exit_code == 0);
  CHECK_THAT(version.out, Catch::Matchers::Contains("mixlora-cpp"));
}
