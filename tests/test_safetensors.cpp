// SafeTensors reader/writer and the Hugging Face weight store: round trips, the real
// stories260K checkpoint, sharded directories, and a battery of corrupt files.
#include "mixlora/common/error.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/io/weight_store.h"

#include "catch.h"
#include "test_helpers.h"

#include <signal.h>
#include <sys/resource.h>

#include <cmath>
#include <cstring>
#include <limits>

using mixlora::InputError;
using mixlora::RuntimeError;
using namespace mixlora::io;
using mixlora::test::stories_dir;
using mixlora::test::TempDir;

namespace {

std::string le_u64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
  return bytes;
}

// A file with the given header text and `data_size` zero bytes of data.
std::string write_raw(const TempDir& dir, const std::string& header, size_t data_size = 0,
                      const std::string& name = "model.safetensors") {
  return dir.write(name, le_u64(header.size()) + header + std::string(data_size, '\0'));
}

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  const auto ca = a.contiguous(), cb = b.contiguous();
  // memcmp must not see the null data pointer of an empty tensor (UBSan, scripts/sanitize.sh).
  return ca.scalar_type() == cb.scalar_type() && ca.sizes() == cb.sizes() &&
         (ca.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0);
}

}  // namespace

TEST_CASE("safetensors round trip keeps every dtype bit-identical", "[safetensors]") {
  TempDir dir;
  at::manual_seed(7);
  at::Tensor f32 = at::randn({3, 5});
  f32[0][0] = std::numeric_limits<float>::quiet_NaN();
  f32[0][1] = -0.0f;
  f32[0][2] = std::numeric_limits<float>::infinity();
  f32[0][3] = std::numeric_limits<float>::denorm_min();
  const std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", f32},
      {"f16", at::randn({7}).to(at::kHalf)},  // 14 bytes: later tensors start unaligned
      {"bf16", at::randn({2, 3, 4}).to(at::kBFloat16)},
      {"i64", at::tensor({std::numeric_limits<int64_t>::min(), int64_t(-1), int64_t(0),
                          std::numeric_limits<int64_t>::max()})},
      {"i32", at::arange(-6, 6, at::kInt).view({3, 4})},
      {"f64", at::randn({2}, at::kDouble)},
      {"u8", at::arange(250, 256, at::kInt).to(at::kByte)},
      {"bool", at::tensor({1, 0, 1}).to(at::kBool)},
      {"transposed", at::arange(6, at::kFloat).view({2, 3}).t()},  // saved as a contiguous copy
      {"scalar", at::scalar_tensor(3.5)},
      {"empty", at::empty({0, 4})},
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"note", "quote \" and é"}};
  const std::string path = dir / "out.safetensors";
  save_safetensors(path, tensors, metadata);

  const auto file = SafeTensorsFile::open(path);
  CHECK(file.metadata() == metadata);
  REQUIRE(file.tensors().size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, expected] = tensors[i];
    INFO(name);
    CHECK(file.tensors()[i].name == name);  // header order is the given order
    CHECK(scalar_type(file.tensors()[i].dtype) == expected.scalar_type());
    CHECK(same_bytes(file.load(name), expected));
  }
  CHECK(file.find("i64")->dtype == DType::I64);
  CHECK(file.find("bf16")->shape == std::vector<int64_t>{2, 3, 4});
  CHECK(file.find("scalar")->shape.empty());
  CHECK(file.find("missing") == nullptr);
  REQUIRE_THROWS_WITH(file.load("missing"),
                      Catch::Contains("out.safetensors") && Catch::Contains("'missing'"));

  // Loaded tensors are copies: they outlive the file and may be written to.
  at::Tensor kept;
  { kept = SafeTensorsFile::open(path).load("i32"); }
  kept.add_(1);
  CHECK(kept[0][0].item<int>() == -5);

  // Layout as the Python library writes it: header padded with spaces to 8 bytes, data packed.
  const std::string bytes = mixlora::test::slurp(path);
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  CHECK(header_size % 8 == 0);
  CHECK(bytes[8] == '{');
  const auto last = bytes.find_last_not_of(' ', 8 + header_size - 1);
  CHECK(bytes[last] == '}');
  uint64_t data_size = 0;
  for (const auto& [name, t] : tensors) data_size += t.nbytes();
  CHECK(bytes.size() == 8 + header_size + data_size);
  CHECK(dir.files() == std::vector<std::string>{"out.safetensors"});  // no temp left behind
}

TEST_CASE("safetensors writer refuses bad input and stays atomic", "[safetensors]") {
  TempDir dir;
  const std::string path = dir / "adapter.safetensors";
  const at::Tensor t = at::ones({4});

  REQUIRE_THROWS_AS(save_safetensors(path, {{"a", t}, {"a", t}}), RuntimeError);
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"a", t}, {"a", t}}),
                      Catch::Contains("adapter.safetensors") && Catch::Contains("'a' given twice"));
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"__metadata__", t}}), Catch::Contains("reserved"));
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"c", at::ones({2}, at::kComplexFloat)}}),
                      Catch::Contains("'c'") && Catch::Contains("ComplexFloat"));
  REQUIRE_THROWS_WITH(
      save_safetensors(dir / "no-such-dir/x.safetensors", {{"a", t}}),
      Catch::Contains("no-such-dir/x.safetensors") && Catch::Contains("No such file"));
  CHECK(dir.files().empty());

  SECTION("a write that fails midway (file size limit, as on a full disk) keeps the old file") {
    save_safetensors(path, {{"old", t}});
    struct rlimit saved {};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
    const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG
    struct rlimit small = saved;
    small.rlim_cur = 4096;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    bool threw_runtime = false;
    std::string message;
    try {
      save_safetensors(path, {{"big", at::ones({1 << 16})}});
    } catch (const RuntimeError& e) {
      threw_runtime = true;
      message = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &saved);
    ::signal(SIGXFSZ, old_handler);

    CHECK(threw_runtime);
    CHECK_THAT(message,
               Catch::Contains("adapter.safetensors") && Catch::Contains("File too large"));
    CHECK(dir.files() == std::vector<std::string>{"adapter.safetensors"});
    const auto file = SafeTensorsFile::open(path);
    CHECK(file.find("old") != nullptr);
    CHECK(file.find("big") == nullptr);
  }
}

TEST_CASE("safetensors reads the real stories260K checkpoint", "[safetensors]") {
  const auto file = SafeTensorsFile::open(stories_dir() + "/model.safetensors");
  CHECK(file.tensors().size() == 47);  // embeddings + final norm + 5 layers x 9 (tied lm_head)
  CHECK(file.metadata() == std::map<std::string, std::string>{{"format", "pt"}});
  CHECK(file.tensors().front().name == "model.embed_tokens.weight");  // file order kept

  const TensorInfo* embed = file.find("model.embed_tokens.weight");
  REQUIRE(embed != nullptr);
  CHECK(embed->dtype == DType::F32);
  CHECK(embed->shape == std::vector<int64_t>{512, 64});
  CHECK(embed->begin == 0);
  CHECK(embed->end == 131072);

  // Reference values measured independently with Debian's /usr/bin/python3 (torch 1.13, numpy):
  // the header parsed by hand (struct.unpack('<Q') + json.loads), the tensor bytes read with
  // np.frombuffer(dtype='<f4'), sums taken in float64; torch.frombuffer(...).double().sum()
  // gave the same -752.3677446640068. Elements compared bit-exactly via float.hex().
  const at::Tensor e = file.load("model.embed_tokens.weight");
  CHECK(e.sizes() == at::IntArrayRef{512, 64});
  CHECK(e.to(at::kDouble).sum().item<double>() == Approx(-752.3677446640068).epsilon(1e-12));
  CHECK(e[0][0].item<float>() == -0x1.2dd2a0p-2f);     // -0.29474878311157227
  CHECK(e[1][5].item<float>() == -0x1.356db4p-6f);     // -0.0188860185444355
  CHECK(e[511][63].item<float>() == -0x1.b2359ap-2f);  // -0.424032598733902
  CHECK(e.abs().max().item<float>() == Approx(1.327228307723999));

  const at::Tensor norm = file.load("model.norm.weight");
  CHECK(norm.to(at::kDouble).sum().item<double>() == Approx(115.95276230573654).epsilon(1e-12));
  CHECK(norm[0].item<float>() == Approx(2.4583089351654053));
}

TEST_CASE("weight store opens a single-file model directory", "[safetensors]") {
  const auto store = WeightStore::open_dir(stories_dir());
  const auto names = store.names();
  CHECK(names.size() == 47);
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(store.contains("model.layers.4.mlp.down_proj.weight"));
  CHECK_FALSE(store.contains("lm_head.weight"));
  CHECK(store.info("model.layers.0.self_attn.k_proj.weight").shape == std::vector<int64_t>{32, 64});
  CHECK(store.load("model.embed_tokens.weight")[0][0].item<float>() == -0x1.2dd2a0p-2f);
  REQUIRE_THROWS_AS(store.info("lm_head.weight"), InputError);
  REQUIRE_THROWS_WITH(store.load("lm_head.weight"),
                      Catch::Contains("stories260K") && Catch::Contains("'lm_head.weight'"));
}

TEST_CASE("weight store loads a sharded directory through its index", "[safetensors]") {
  TempDir dir;
  at::manual_seed(3);
  const std::vector<std::pair<std::string, at::Tensor>> shard1 = {
      {"model.embed_tokens.weight", at::randn({16, 8})},
      {"model.layers.0.mlp.up_proj.weight", at::randn({4, 8})}};
  const std::vector<std::pair<std::string, at::Tensor>> shard2 = {
      {"model.norm.weight", at::randn({8}).to(at::kBFloat16)},
      {"lm_head.weight", at::randn({16, 8}).to(at::kHalf)},
      {"unlisted",
       at::ones({1})}};  // in a shard but not in the index: ignored, as transformers does
  save_safetensors(dir / "model-00001-of-00002.safetensors", shard1, {{"format", "pt"}});
  save_safetensors(dir / "model-00002-of-00002.safetensors", shard2, {{"format", "pt"}});
  dir.write("model.safetensors.index.json", R"({
    "metadata": {"total_size": 1234},
    "weight_map": {
      "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
      "model.layers.0.mlp.up_proj.weight": "model-00001-of-00002.safetensors",
      "model.norm.weight": "model-00002-of-00002.safetensors",
      "lm_head.weight": "model-00002-of-00002.safetensors"
    }})");

  const auto store = WeightStore::open_dir(dir.path.string());
  CHECK(store.names() == std::vector<std::string>{"lm_head.weight", "model.embed_tokens.weight",
                                                  "model.layers.0.mlp.up_proj.weight",
                                                  "model.norm.weight"});
  CHECK_FALSE(store.contains("unlisted"));
  CHECK(store.info("model.norm.weight").dtype == DType::BF16);
  for (const auto* shard : {&shard1, &shard2})
    for (const auto& [name, tensor] : *shard) {
      if (name == "unlisted") continue;
      INFO(name);
      CHECK(same_bytes(store.load(name), tensor));
    }
}

TEST_CASE("safetensors reader rejects corrupt files with one clear line", "[safetensors]") {
  TempDir dir;
  const auto rejects = [](const std::string& path, const std::string& expected) {
    INFO(path);
    REQUIRE_THROWS_AS(SafeTensorsFile::open(path), InputError);
    REQUIRE_THROWS_WITH(SafeTensorsFile::open(path),
                        Catch::Contains(path) && Catch::Contains(expected));
  };
  const auto header_with = [](const std::string& entry) {
    return R"({"__metadata__": {"format": "pt"}, "w": )" + entry + "}";
  };

  SECTION("missing file") { rejects(dir / "nope.safetensors", "No such file"); }
  SECTION("a directory") { rejects(dir.path.string(), "not a regular file"); }
  SECTION("empty file") {
    dir.write("model.safetensors", "");
    rejects(dir / "model.safetensors", "file is 0 bytes");
  }
  SECTION("shorter than the 8-byte length") {
    dir.write("model.safetensors", "abcde");
    rejects(dir / "model.safetensors", "file is 5 bytes");
  }
  SECTION("header length larger than the file") {
    dir.write("model.safetensors", le_u64(1000) + "{}");
    rejects(dir / "model.safetensors",
            "header length 1000 bytes runs past the end of the 10-byte file");
  }
  SECTION("header length above the cap") {
    dir.write("model.safetensors", le_u64(kMaxHeaderBytes + 1) + "{}");
    rejects(dir / "model.safetensors", "exceeds the 104857600-byte limit");
  }
  SECTION("header not JSON") {
    rejects(write_raw(dir, "{\"w\": nope"), "header is not valid JSON");
  }
  SECTION("header a JSON array") { rejects(write_raw(dir, "[1, 2]"), "header is a JSON array"); }
  SECTION("metadata value not a string") {
    rejects(write_raw(dir, R"({"__metadata__": {"step": 5}})"),
            "__metadata__ key 'step' is 5, expected a string");
  }
  SECTION("entry not an object") {
    rejects(write_raw(dir, header_with("3")), "tensor 'w': entry is 3");
  }
  SECTION("missing field") {
    rejects(write_raw(dir, header_with(R"({"dtype": "F32", "shape": [1]})")),
            "tensor 'w': missing \"data_offsets\"");
  }
  SECTION("unknown dtype") {
    rejects(write_raw(dir,
                      header_with(R"({"dtype": "Q4_K", "shape": [1], "data_offsets": [0, 4]})"), 4),
            "tensor 'w': unknown dtype \"Q4_K\" (expected one of F32, F16, BF16");
  }
  SECTION("negative shape") {
    rejects(
        write_raw(dir, header_with(R"({"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]})"),
                  8),
        "tensor 'w': shape [2,-1] has dimension -1, expected a non-negative integer");
  }
  SECTION("fractional shape") {
    rejects(write_raw(
                dir, header_with(R"({"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]})"), 8),
            "tensor 'w': shape [2.5] has dimension 2.5");
  }
  SECTION("offsets out of range") {
    rejects(write_raw(
                dir, header_with(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 16]})"), 12),
            "tensor 'w': data_offsets [0, 16] run past the 12-byte data section");
  }
  SECTION("offsets not a pair") {
    rejects(
        write_raw(dir, header_with(R"({"dtype": "F32", "shape": [1], "data_offsets": [0]})"), 4),
        "tensor 'w': data_offsets is [0], expected [begin, end]");
  }
  SECTION("begin after end") {
    rejects(
        write_raw(dir, header_with(R"({"dtype": "F32", "shape": [0], "data_offsets": [8, 4]})"), 8),
        "tensor 'w': data_offsets [8, 4] has begin after end");
  }
  SECTION("byte length mismatch") {
    const auto path = write_raw(
        dir, R"({"model.norm.weight": {"dtype": "F32", "shape": [64], "data_offsets": [0, 100]}})",
        100);
    rejects(
        path,
        "model.safetensors: tensor 'model.norm.weight': data_offsets [0, 100] hold 100 bytes but "
        "shape [64] of F32 needs 256");
  }
  SECTION("byte length overflows 64 bits") {
    rejects(write_raw(dir, header_with(R"({"dtype": "F32", "shape": [4294967296, 4294967296],
                                           "data_offsets": [0, 0]})")),
            "needs more than 2^64");
  }
  SECTION("overlapping tensors") {
    const auto path = write_raw(dir, R"({
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]},
        "c": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
                                32);
    rejects(path, "tensor 'c': data_offsets [8, 16] overlap tensor 'a' at [0, 16]");
  }
  SECTION("duplicate tensor name") {
    const std::string entry = R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})";
    rejects(write_raw(dir, "{\"w\": " + entry + ", \"w\": " + entry + "}", 4),
            "tensor 'w' appears twice");
  }
}

TEST_CASE("safetensors reader accepts edge cases the format allows", "[safetensors]") {
  TempDir dir;
  SECTION("no tensors at all, header padded with spaces") {
    const auto file = SafeTensorsFile::open(write_raw(dir, "{}      "));
    CHECK(file.tensors().empty());
    CHECK(file.metadata().empty());
  }
  SECTION("empty tensors share an offset and a scalar holds one element") {
    const auto file = SafeTensorsFile::open(write_raw(dir, R"({
        "z1": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
        "s": {"dtype": "I32", "shape": [], "data_offsets": [0, 4]},
        "z2": {"dtype": "BF16", "shape": [5, 0], "data_offsets": [2, 2]}})",
                                                      4));
    CHECK(file.load("z1").sizes() == at::IntArrayRef{0, 3});
    CHECK(file.load("s").item<int>() == 0);
    CHECK(file.load("z2").scalar_type() == at::kBFloat16);
  }
}

TEST_CASE("weight store rejects broken model directories with hints", "[safetensors]") {
  TempDir dir;
  const std::string root = dir.path.string();
  const auto rejects = [](const std::string& model_dir, const std::vector<std::string>& expected) {
    REQUIRE_THROWS_AS(WeightStore::open_dir(model_dir), InputError);
    try {
      WeightStore::open_dir(model_dir);
    } catch (const InputError& e) {
      for (const auto& part : expected) CHECK_THAT(e.what(), Catch::Contains(part));
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  };

  SECTION("missing directory") { rejects(root + "/absent", {root + "/absent", "does not exist"}); }
  SECTION("directory without weights") {
    dir.write("config.json", "{}");
    rejects(root, {root, "expected model.safetensors or model.safetensors.index.json"});
  }
  SECTION("pickle weights only") {
    dir.write("pytorch_model.bin", "PK");
    rejects(root, {"pytorch_model.bin", "never unpickles", "save_file(torch.load("});
  }
  SECTION("index JSON corrupt") {
    dir.write("model.safetensors.index.json", "{\"weight_map\": {\"a\": ");
    rejects(root, {"model.safetensors.index.json", "JSON", "line 1"});
  }
  SECTION("index without weight_map") {
    dir.write("model.safetensors.index.json", R"({"metadata": {}})");
    rejects(root, {"model.safetensors.index.json", "\"weight_map\""});
  }
  SECTION("index referencing a missing shard") {
    save_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", at::ones({1})}});
    dir.write("model.safetensors.index.json",
              R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                   "b": "model-00002-of-00002.safetensors"}})");
    rejects(root, {"model.safetensors.index.json", "tensor 'b'",
                   "'model-00002-of-00002.safetensors'", "missing"});
  }
  SECTION("index naming a tensor its shard lacks") {
    save_safetensors(dir / "model-00001-of-00001.safetensors", {{"a", at::ones({1})}});
    dir.write(
        "model.safetensors.index.json",
        R"({"weight_map": {"a": "model-00001-of-00001.safetensors", "ghost": "model-00001-of-00001.safetensors"}})");
    rejects(root, {"model.safetensors.index.json", "tensor 'ghost'", "has no such tensor"});
  }
  SECTION("index pointing outside the directory") {
    dir.write("model.safetensors.index.json",
              R"({"weight_map": {"a": "../elsewhere.safetensors"}})");
    rejects(root, {"tensor 'a'", "expected a file name in the same directory"});
  }
  SECTION("a corrupt shard names the shard") {
    dir.write("model-00001-of-00001.safetensors", "bad");
    dir.write("model.safetensors.index.json",
              R"({"weight_map": {"a": "model-00001-of-00001.safetensors"}})");
    rejects(root, {"model-00001-of-00001.safetensors", "file is 3 bytes"});
  }
}
