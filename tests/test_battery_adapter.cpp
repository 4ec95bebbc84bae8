// Bad-input battery, adapter directories given to mixlora-eval: from another base model,
// pickles only, missing or broken files.
#include "battery.h"

#include "mixlora/adapters/adapter.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/model/base_model.h"
#include "stories_model.h"

#include "catch.h"

#include <functional>

using namespace mixlora;
using namespace mixlora::test;
using namespace mixlora::test::battery;

namespace {

// A MixLoRA adapter made for `base`, saved in `dir`.
void save_adapter(const model::BaseModel& base, const std::string& dir) {
  config::AdapterConfig c;
  c.name = "ad";
  c.peft_type = config::PeftType::mixlora;
  c.num_experts = 2;
  c.top_k = 1;
  c.lora.r = 2;
  c.target_modules = {"q_proj", "gate_proj", "up_proj", "down_proj"};
  adapters::Adapter::create(c, base, 1).save(dir, "base");
}

struct Case {
  std::string what;
  std::function<void(const std::string& dir)>
      breaks;  // applied to a good stories260K adapter in dir
  std::vector<std::string> messages;
};

}  // namespace

TEST_CASE("battery: a bad adapter directory is exit 2, one line, no report", "[battery]") {
  const std::vector<Case> cases = {
      {"adapter trained on another base model (hidden 32, not 64)",
       [](const std::string& dir) {
         std::filesystem::remove_all(dir);
         const auto other = model::random_base_model(tiny_llama_config(512, 64), at::kFloat,
                                                     c10::Device(c10::kCPU), 7);
         save_adapter(other, dir);
       },
       {"has shape", "(wrong base model?)"}},
      {"adapter_model.bin that is not a zip (safetensors bytes renamed)",
       [](const std::string& dir) {
         std::filesystem::rename(dir + "/adapter_model.safetensors", dir + "/adapter_model.bin");
       },
       {"adapter_model.bin", "not a readable torch.save zip archive"}},
      {"adapter_model.bin whose pickle calls os.system",
       [](const std::string& dir) {
         std::filesystem::remove(dir + "/adapter_model.safetensors");
         using namespace std::string_literals;
         const std::string pickle =
             "\x80\x02"s + "cposix\nsystem\nX\x02\x00\x00\x00"s + "ls\x85R."s;
         write_file(dir + "/adapter_model.bin",
                    torch_zip_bytes({{"data.pkl", pickle}, {"version", "3\n"}}));
       },
       {"adapter_model.bin", "global 'posix.system' is not a tensor record",
        "never general pickles"}},
      {"adapter_model.bin whose storage record is shorter than the pickle claims",
       [](const std::string& dir) {
         std::filesystem::remove(dir + "/adapter_model.safetensors");
         const auto pickle = float_tensor_pickle("x", 1000, 0, {10, 100}, {100, 1});
         write_file(dir + "/adapter_model.bin", torch_zip_bytes({{"data.pkl", pickle},
                                                                 {"data/0", std::string(16, '\0')},
                                                                 {"version", "3\n"}}));
       },
       {"adapter_model.bin", "holds 16 bytes but tensor 'x' claims 1000 elements"}},
      {"adapter_model.bin whose tensor view runs past its storage",
       [](const std::string& dir) {
         std::filesystem::remove(dir + "/adapter_model.safetensors");
         const auto pickle = float_tensor_pickle("x", 4, 2, {2, 2}, {2, 1});
         write_file(dir + "/adapter_model.bin", torch_zip_bytes({{"data.pkl", pickle},
                                                                 {"data/0", std::string(16, '\0')},
                                                                 {"version", "3\n"}}));
       },
       {"adapter_model.bin", "a tensor view reaching element 5 of a storage of 4"}},
      {"adapter_model.bin cut short",
       [](const std::string& dir) {
         std::filesystem::remove(dir + "/adapter_model.safetensors");
         const auto pickle = float_tensor_pickle("x", 4, 0, {4}, {1});
         const auto bytes = torch_zip_bytes(
             {{"data.pkl", pickle}, {"data/0", std::string(16, '\0')}, {"version", "3\n"}});
         write_file(dir + "/adapter_model.bin", bytes.substr(0, bytes.size() / 2));
       },
       {"adapter_model.bin", "not a readable torch.save zip archive"}},
      {"no adapter_config.json",
       [](const std::string& dir) { std::filesystem::remove(dir + "/adapter_config.json"); },
       {"missing adapter_config.json"}},
      {"adapter_config.json with bias \"all\"",
       [](const std::string& dir) {
         auto c = nlohmann::json::parse(slurp(dir + "/adapter_config.json"));
         c["bias"] = "all";
         write_file(dir + "/adapter_config.json", c.dump());
       },
       {"adapter_config.json", "bias"}},
      {"adapter_config.json r as a string",
       [](const std::string& dir) {
         auto c = nlohmann::json::parse(slurp(dir + "/adapter_config.json"));
         c["r"] = "2";
         write_file(dir + "/adapter_config.json", c.dump());
       },
       {"adapter_config.json: r: expected an integer"}},
      {"adapter_config.json nested 100000 deep",
       [](const std::string& dir) {
         write_file(dir + "/adapter_config.json", nesting_bomb(100000));
       },
       {"adapter_config.json"}},
      {"adapter_model.safetensors cut short",
       [](const std::string& dir) {
         const auto bytes = slurp(dir + "/adapter_model.safetensors");
         write_file(dir + "/adapter_model.safetensors", bytes.substr(0, bytes.size() / 2));
       },
       {"adapter_model.safetensors"}},
      {"adapter tensor missing",
       [](const std::string& dir) {
         const auto file = io::SafeTensorsFile::open(dir + "/adapter_model.safetensors");
         std::vector<std::pair<std::string, at::Tensor>> tensors;
         for (const auto& t : file.tensors()) tensors.emplace_back(t.name, file.load(t.name));
         tensors.pop_back();
         io::save_safetensors(dir + "/adapter_model.safetensors", tensors);
       },
       {"adapter_model.safetensors", "missing"}},
      {"adapter directory missing",
       [](const std::string& dir) { std::filesystem::remove_all(dir); },
       {"adapter directory not found"}},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.what) {
      TempDir ws;
      const auto dir = ws / "adapter";
      save_adapter(stories(), dir);
      c.breaks(dir);
      ws.write("data.jsonl", lines(good_rows(4)));
      const auto report = ws / "report.json";
      const auto r = run_tool("mixlora-eval --base-model " + shell_quote(stories_dir()) +
                              " --adapter " + shell_quote(dir) + " --data " +
                              shell_quote(ws / "data.jsonl") + " --output " + shell_quote(report));
      require_clean_input_error(r, c.messages, report, "eval: " + c.what);
    }
  }
}
