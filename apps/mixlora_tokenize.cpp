// mixlora-tokenize: text to token ids and back with a model directory's tokenizer
// (tokenizer.json, else tokenizer.model; docs/tokenizers.md). JSON lines in, JSON lines out:
//   {"text": "..."}  ->  {"ids": [...]}          (--decode: {"ids": [...]} -> {"text": "..."})
#include "mixlora/cli/app.h"
#include "mixlora/common/error.h"
#include "mixlora/data/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <string>

namespace {

// The value of `key` in one input line, or an InputError naming the line.
const nlohmann::json& field(const nlohmann::json& row, const char* key, size_t line) {
  if (!row.is_object())
    mixlora::fail_input("<stdin>:{}: expected a JSON object like {{\"{}\": ...}}", line, key);
  auto it = row.find(key);
  if (it == row.end()) mixlora::fail_input("<stdin>:{}: missing \"{}\"", line, key);
  return *it;
}

// --bench: encodes every line of FILE (without its newline) `repeats` times on one thread and
// prints one JSON line with the encode time of each pass (loading excluded): process CPU
// seconds ("seconds", what a loaded machine does not distort) and wall seconds.
int run_bench(const mixlora::data::Tokenizer& tokenizer, const std::string& path, int repeats) {
  std::ifstream in(path, std::ios::binary);
  if (!in) mixlora::fail_input("{}: cannot read the --bench file", path);
  std::vector<std::string> lines;
  size_t bytes = 0;
  for (std::string line; std::getline(in, line);) {
    bytes += line.size() + 1;
    lines.push_back(std::move(line));
  }
  auto cpu_seconds = [] {
    timespec now{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
  };
  nlohmann::json seconds = nlohmann::json::array(), wall = nlohmann::json::array();
  size_t tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    tokens = 0;
    const double cpu_start = cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    for (const auto& line : lines) tokens += tokenizer.encode(line, false, false).size();
    seconds.push_back(cpu_seconds() - cpu_start);
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::cout << nlohmann::json{{"lines", lines.size()},
                              {"bytes", bytes},
                              {"tokens", tokens},
                              {"seconds", seconds},
                              {"wall_seconds", wall}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Tokenize JSON lines {\"text\": ...} from stdin into {\"ids\": [...]} (or back with "
      "--decode).",
      "mixlora-tokenize"};
  std::string base_model;
  bool add_special = false, decode = false;
  app.add_option("--base-model", base_model,
                 "model directory with tokenizer.json or tokenizer.model")
      ->required();
  app.add_flag("--add-special-tokens", add_special,
               "add BOS/EOS as the model's tokenizer does by default (transformers' "
               "add_special_tokens=True)");
  app.add_flag("--decode", decode,
               "read {\"ids\": [...]} and write {\"text\": ...}; special tokens are skipped");
  std::string bench_file;
  int repeats = 3;
  app.add_option("--bench", bench_file,
                 "time encoding every line of FILE instead (scripts/bench_tokenizer.sh)");
  app.add_option("--repeats", repeats, "passes over the --bench file")->capture_default_str();

  return mixlora::cli::run_main(app, argc, argv, [&] {
    const auto tokenizer = mixlora::data::Tokenizer::from_model_dir(base_model);
    if (!bench_file.empty()) return run_bench(tokenizer, bench_file, std::max(repeats, 1));
    std::ios::sync_with_stdio(false);
    std::string line;
    size_t number = 0;
    while (std::getline(std::cin, line)) {
      ++number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json row;
      try {
        row = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        mixlora::fail_input("<stdin>:{}: not valid JSON ({})", number, e.what());
      }
      nlohmann::json out;
      try {
        if (decode) {
          const auto& ids = field(row, "ids", number);
          if (!ids.is_array())
            mixlora::fail_input("<stdin>:{}: \"ids\" must be an array of token ids", number);
          std::vector<int64_t> values;
          for (const auto& id : ids) {
            if (!id.is_number_integer())
              mixlora::fail_input("<stdin>:{}: \"ids\" must hold integers, got {}", number,
                                  id.dump());
            values.push_back(id.get<int64_t>());
          }
          out["text"] = tokenizer.decode(values);
        } else {
          const auto& text = field(row, "text", number);
          if (!text.is_string())
            mixlora::fail_input("<stdin>:{}: \"text\" must be a string", number);
          const auto& value = text.get_ref<const std::string&>();
          out["ids"] =
              add_special ? tokenizer.encode(value) : tokenizer.encode(value, false, false);
        }
      } catch (const mixlora::InputError& e) {
        const std::string message = e.what();
        if (message.rfind("<stdin>:", 0) == 0) throw;
        mixlora::fail_input("<stdin>:{}: {}", number, message);
      }
      std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
    std::cout.flush();
    return 0;
  });
}
