// The restricted adapter_model.bin reader: what torch.save writes (ours and Python's) reads back
// bit for bit; what it does not write is an InputError, never code run or memory overrun.
#include "mixlora/adapters/adapter.h"
#include "mixlora/common/error.h"
#include "mixlora/io/restricted_pickle.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/io/torch_bin.h"
#include "mixlora/io/torch_bin_reader.h"

#include "battery.h"
#include "stories_model.h"
#include "test_helpers.h"

#include "catch.h"
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>

using namespace mixlora;
using namespace mixlora::io;
using Catch::Matchers::Contains;
using mixlora::test::TempDir;

namespace {

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() &&
         (a.numel() == 0 ||
          std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.nbytes()) == 0);
}

std::string pickle_error(const std::string& pickle) {
  try {
    parse_state_dict_pickle(pickle, "test.pkl");
  } catch (const InputError& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

TEST_CASE("load_torch_bin reads back what save_torch_bin wrote, every dtype",
          "[torch_bin][reader]") {
  TempDir dir;
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", at::randn({3, 4})},
      {"f64", at::randn({2}, at::kDouble)},
      {"bf16", at::randn({5}).to(at::kBFloat16)},
      {"f16", at::randn({2, 2}).to(at::kHalf)},
      {"i64", at::arange(6, at::kLong).reshape({2, 3})},
      {"i32", at::arange(3, at::kInt)},
      {"i16", at::arange(3, at::kShort)},
      {"i8", at::arange(3, at::kChar)},
      {"u8", at::arange(3, at::kByte)},
      {"bool", at::arange(2).eq(0)},
      {"empty", at::zeros({0, 4})},
      {"scalar", at::scalar_tensor(1.5)},
      {"classifier", at::randn({2, 64})},
  };
  const std::string path = dir / "adapter_model.bin";
  save_torch_bin(path, tensors);
  const auto back = load_torch_bin(path);
  REQUIRE(back.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    INFO(tensors[i].first);
    CHECK(back[i].first == tensors[i].first);
    CHECK(same_bits(back[i].second, tensors[i].second));
  }
}

TEST_CASE(
    "load_torch_bin reads Python's torch.save: Parameters, views, bf16, OrderedDict state dicts",
    "[torch_bin][reader][python]") {
  const auto python = test::reference_python_or_skip();
  if (python.empty()) return;
  TempDir dir;
  const std::string script =
      std::string(MIXLORA_TEST_SOURCE_DIR) + "/tests/reference/write_torch_bin.py";
  REQUIRE(std::system(fmt::format("'{}' '{}' '{}'", python, script, dir.str()).c_str()) == 0);
  const auto expected = SafeTensorsFile::open(dir / "expected.safetensors");
  size_t compared = 0;
  for (const char* file : {"python.bin", "state_dict.bin"}) {
    for (const auto& [name, tensor] : load_torch_bin(dir / file)) {
      INFO(file << "/" << name);
      const auto* info = expected.find(std::string(file) + "/" + name);
      REQUIRE(info);
      CHECK(same_bits(tensor, expected.load(info->name)));
      ++compared;
    }
  }
  CHECK(compared == expected.tensors().size());
}

TEST_CASE("the restricted pickle reader refuses everything but tensor records",
          "[torch_bin][reader]") {
  using namespace std::string_literals;
  const std::string proto = "\x80\x02"s;
  // A memoized dict stored into itself: refused (values must be tensors), and no leak under ASan.
  CHECK_THAT(pickle_error(proto + "}q\x00"s + "X\x01\x00\x00\x00"s + "ah\x00"s + "s."),
             Contains("entry 'a' is a dict, not a tensor"));
  CHECK_THAT(pickle_error(proto + "cbuiltins\neval\n."),
             Contains("global 'builtins.eval' is not a tensor record"));
  CHECK_THAT(pickle_error(proto + "ccollections\nOrderedDict\nK\x01\x85R."),
             Contains("collections.OrderedDict called with arguments"));
  CHECK_THAT(pickle_error(proto + "]."), Contains("opcode 0x5d"));
  CHECK_THAT(pickle_error(proto + "}"), Contains("ends without a STOP"));
  CHECK_THAT(pickle_error(proto + "h\x05."), Contains("memo index that was never stored"));
  CHECK_THAT(pickle_error(proto + "K\x01."), Contains("holds an int, not a dict"));
  CHECK_THAT(pickle_error(proto + "}K\x01K\x02s."), Contains("a dict key is an int"));
  CHECK_THAT(pickle_error(proto + "\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."s),
             Contains("wider than 64 bits"));
  // Views are checked against the storage size the pickle claims, overflow included.
  CHECK_THAT(pickle_error(test::battery::float_tensor_pickle("x", 4, 0, {3}, {2})),
             Contains("reaching element 4 of a storage of 4"));
  CHECK_THAT(
      pickle_error(test::battery::float_tensor_pickle("x", 4, 0, {4, 2}, {INT64_MAX / 2, 1})),
      Contains("too large to address"));
  CHECK(pickle_error(test::battery::float_tensor_pickle("x", 4, 0, {2, 2}, {2, 1})) ==
        "(accepted)");
  CHECK(pickle_error(test::battery::float_tensor_pickle("x", 0, 0, {0, 3}, {3, 1})) ==
        "(accepted)");
}

TEST_CASE(
    "Adapter::load reads adapter_model.bin alone, infers a classifier from its head, accepts "
    "classifier.weight",
    "[torch_bin][reader][adapters]") {
  config::AdapterConfig c;
  c.name = "cls";
  c.task_name = "classification";
  c.num_labels = 3;
  c.lora.r = 2;
  c.target_modules = {"q_proj", "v_proj"};
  const auto made = adapters::Adapter::create(c, test::stories(), 7);
  TempDir dir;
  made.save(dir.str(), "stories", /*export_bin=*/true);
  std::filesystem::remove(dir / "adapter_model.safetensors");
  // As MoE-PEFT writes it: no task_name, no num_labels.
  auto json = nlohmann::json::parse(test::slurp(dir / "adapter_config.json"));
  json.erase("task_name");
  json.erase("num_labels");
  test::write_file(dir / "adapter_config.json", json.dump());
  const auto loaded = adapters::Adapter::load(dir.str(), test::stories());
  CHECK(loaded.config.task_name == "classification");
  CHECK(loaded.config.num_labels == 3);
  CHECK(at::equal(loaded.classifier, made.classifier));
  const auto made_state = made.state_dict();
  const auto loaded_state = loaded.state_dict();
  REQUIRE(made_state.size() == loaded_state.size());
  for (size_t i = 0; i < made_state.size(); ++i)
    CHECK(at::equal(made_state[i].second, loaded_state[i].second));

  // Our older files named the head classifier.weight.
  std::vector<std::pair<std::string, at::Tensor>> renamed;
  for (const auto& [name, tensor] : made_state)
    renamed.emplace_back(name == "classifier" ? "classifier.weight" : name, tensor.detach());
  std::filesystem::remove(dir / "adapter_model.bin");
  save_safetensors(dir / "adapter_model.safetensors", renamed);
  CHECK(at::equal(adapters::Adapter::load(dir.str(), test::stories()).classifier, made.classifier));
}
