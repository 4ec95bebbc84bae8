// Bad-input battery, base model: broken safetensors files, sharded indexes, config.json, pickles.
#include "battery.h"

#include "mixlora/io/safetensors.h"

#include "catch.h"

#include <functional>

using namespace mixlora::test;
using namespace mixlora::test::battery;

namespace {

struct Case {
  std::string what;
  std::function<void(TrainJob&)> breaks;  // points the job at a broken model
  std::vector<std::string> messages;
};

uint64_t stories_header_length() {
  const auto bytes = slurp(stories_dir() + "/model.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  return n;
}

// A stories260K copy whose model.safetensors is `bytes`.
void with_weights(TrainJob& job, const std::string& bytes) {
  job.base_model = copy_of_stories(job.ws);
  write_file(job.base_model + "/model.safetensors", bytes);
}

// A stories260K copy whose config.json is `text`.
void with_config(TrainJob& job, const std::string& text) {
  job.base_model = copy_of_stories(job.ws);
  write_file(job.base_model + "/config.json", text);
}

nlohmann::json stories_config() {
  return nlohmann::json::parse(slurp(stories_dir() + "/config.json"));
}

// stories260K's tensors, rewritten with `edit` applied to the list.
void with_tensors(
    TrainJob& job,
    const std::function<void(std::vector<std::pair<std::string, at::Tensor>>&)>& edit) {
  const auto file = mixlora::io::SafeTensorsFile::open(stories_dir() + "/model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& t : file.tensors()) tensors.emplace_back(t.name, file.load(t.name));
  edit(tensors);
  job.base_model = copy_of_stories(job.ws);
  mixlora::io::save_safetensors(job.base_model + "/model.safetensors", tensors);
}

}  // namespace

TEST_CASE("battery: a broken base model is exit 2, one line, no output", "[battery]") {
  const auto real = slurp(stories_dir() + "/model.safetensors");
  const uint64_t header_length = stories_header_length();
  const std::vector<Case> cases = {
      {"safetensors shorter than its length prefix",
       [&](TrainJob& j) { with_weights(j, real.substr(0, 5)); },
       {"model.safetensors", "8"}},
      {"safetensors header length beyond the file",
       [&](TrainJob& j) {
         with_weights(j,
                      safetensors_bytes(real.substr(8, header_length), "", header_length + 4096));
       },
       {"model.safetensors", "header"}},
      {"safetensors header length of 1 TiB (over the 100 MiB cap)",
       [&](TrainJob& j) { with_weights(j, safetensors_bytes("{}", "", 1ull << 40)); },
       {"model.safetensors", "header"}},
      {"safetensors header that is not JSON",
       [&](TrainJob& j) { with_weights(j, safetensors_bytes("not json at all")); },
       {"model.safetensors", "not valid JSON"}},
      {"safetensors header nested 100000 deep",
       [&](TrainJob& j) { with_weights(j, safetensors_bytes(nesting_bomb(100000))); },
       {"model.safetensors"}},
      {"safetensors file cut short (data_offsets past the end)",
       [&](TrainJob& j) { with_weights(j, real.substr(0, real.size() - 1000)); },
       {"model.safetensors"}},
      {"safetensors unknown dtype",
       [&](TrainJob& j) {
         with_weights(
             j, safetensors_bytes(
                    R"({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", "ab"));
       },
       {"model.safetensors", "F8_E4M3"}},
      {"safetensors byte length that disagrees with shape x dtype",
       [&](TrainJob& j) {
         with_weights(j, safetensors_bytes(
                             R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})",
                             std::string(8, '\0')));
       },
       {"model.safetensors", "tensor 'w'"}},
      {"safetensors overlapping tensors",
       [&](TrainJob& j) {
         with_weights(j, safetensors_bytes(
                             R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                             R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                             std::string(12, '\0')));
       },
       {"model.safetensors", "overlap"}},
      {"weight of the wrong shape (config.json says intermediate_size 100)",
       [&](TrainJob& j) {
         auto c = stories_config();
         c["intermediate_size"] = 100;
         with_config(j, c.dump());
       },
       {"has shape", "172"}},
      {"weight with an integer dtype",
       [&](TrainJob& j) {
         with_tensors(j, [](auto& t) { t[0].second = t[0].second.to(at::kInt); });
       },
       {"I32"}},
      {"weight missing from the file",
       [&](TrainJob& j) { with_tensors(j, [](auto& t) { t.pop_back(); }); },
       {"missing"}},
      {"unexpected extra tensor",
       [&](TrainJob& j) {
         with_tensors(j, [](auto& t) { t.emplace_back("model.extra.weight", at::zeros({2})); });
       },
       {"model.extra.weight"}},
      {"sharded index naming a missing shard",
       [&](TrainJob& j) {
         j.base_model = copy_of_stories(j.ws);
         const auto file = mixlora::io::SafeTensorsFile::open(stories_dir() + "/model.safetensors");
         nlohmann::json map;
         for (const auto& t : file.tensors()) map[t.name] = "model-00001-of-00002.safetensors";
         map[file.tensors().back().name] = "model-00002-of-00002.safetensors";
         std::filesystem::rename(j.base_model + "/model.safetensors",
                                 j.base_model + "/model-00001-of-00002.safetensors");
         write_file(j.base_model + "/model.safetensors.index.json",
                    nlohmann::json{{"weight_map", map}}.dump());
       },
       {"model-00002-of-00002.safetensors"}},
      {"sharded index that is not JSON",
       [&](TrainJob& j) {
         j.base_model = copy_of_stories(j.ws);
         std::filesystem::remove(j.base_model + "/model.safetensors");
         write_file(j.base_model + "/model.safetensors.index.json", "{\"weight_map\": ");
       },
       {"model.safetensors.index.json", "invalid JSON"}},
      {"only pytorch_model.bin (a pickle)",
       [&](TrainJob& j) {
         j.base_model = copy_of_stories(j.ws);
         std::filesystem::rename(j.base_model + "/model.safetensors",
                                 j.base_model + "/pytorch_model.bin");
       },
       {"pytorch_model.bin", "unpickle", "safetensors"}},
      {"config.json hidden_size as a string",
       [&](TrainJob& j) {
         auto c = stories_config();
         c["hidden_size"] = "64";
         with_config(j, c.dump());
       },
       {"config.json: hidden_size: expected an integer, got string \"64\""}},
      {"config.json num_attention_heads not dividing hidden_size",
       [&](TrainJob& j) {
         auto c = stories_config();
         c["num_attention_heads"] = 7;
         with_config(j, c.dump());
       },
       {"config.json", "num_attention_heads"}},
      {"config.json nested 100000 deep",
       [&](TrainJob& j) { with_config(j, nesting_bomb(100000)); },
       {"config.json"}},
      {"config.json empty",
       [&](TrainJob& j) { with_config(j, ""); },
       {"config.json", "invalid JSON"}},
      {"config.json of 65 MiB (over the 64 MiB cap)",
       [&](TrainJob& j) {
         j.base_model = copy_of_stories(j.ws);
         std::filesystem::resize_file(j.base_model + "/config.json", 65ull << 20);  // sparse
       },
       {"config.json", "64 MiB"}},
      {"config.json missing",
       [&](TrainJob& j) {
         j.base_model = copy_of_stories(j.ws);
         std::filesystem::remove(j.base_model + "/config.json");
       },
       {"config.json"}},
      {"unsupported architecture",
       [&](TrainJob& j) {
         auto c = stories_config();
         c["architectures"] = {"GPT2LMHeadModel"};
         with_config(j, c.dump());
       },
       {"GPT2LMHeadModel"}},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.what) {
      TrainJob job;
      c.breaks(job);
      require_clean_input_error(job.run(), c.messages, job.out_dir, c.what);
    }
  }
}
