// adapter_model.bin export: Python's torch.load(path, weights_only=True) must read back exactly
// the names, dtypes, shapes and bytes we wrote, from a ZIP whose records are 64-byte aligned.
// The reading side is tests/reference/check_torch_bin.py run by Debian's python3-torch.
#include "mixlora/common/error.h"
#include "mixlora/io/pickle_writer.h"
#include "mixlora/io/torch_bin.h"
#include "mixlora/io/zip_writer.h"

#include "catch.h"
#include "test_helpers.h"
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <limits>

using mixlora::RuntimeError;
using namespace mixlora::io;
using mixlora::test::slurp;
using mixlora::test::TempDir;
using Json = nlohmann::json;
using Catch::Matchers::Contains;

namespace {

// Runs the Python checker and returns its JSON report; FAILs with its stderr otherwise.
Json run_checker(const TempDir& dir, const std::string& mode, const std::string& input) {
  const std::string script =
      std::string(MIXLORA_TEST_SOURCE_DIR) + "/tests/reference/check_torch_bin.py";
  const std::string out = dir / "report.json", err = dir / "stderr.txt";
  const std::string command =
      fmt::format("/usr/bin/python3 '{}' {} '{}' '{}' 2>'{}'", script, mode, input, out, err);
  const int status = std::system(command.c_str());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 3 || code == 127)
    FAIL(
        "/usr/bin/python3 with torch is needed to check .bin files: install Debian's python3-torch "
        "(apt-get install python3-torch). "
        << slurp(err));
  if (code != 0) FAIL("check_torch_bin.py exited with " << code << ":\n" << slurp(err));
  return Json::parse(slurp(out));
}

std::string python_dtype(at::ScalarType scalar) {
  switch (scalar) {
    case at::kFloat: return "torch.float32";
    case at::kDouble: return "torch.float64";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kHalf: return "torch.float16";
    case at::kLong: return "torch.int64";
    case at::kInt: return "torch.int32";
    case at::kShort: return "torch.int16";
    case at::kChar: return "torch.int8";
    case at::kByte: return "torch.uint8";
    case at::kBool: return "torch.bool";
    default: return "?";
  }
}

std::string hex_bytes(const at::Tensor& tensor) {
  const auto t = tensor.detach().contiguous();
  const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
  std::string hex;
  for (size_t i = 0; i < t.nbytes(); ++i) hex += fmt::format("{:02x}", bytes[i]);
  return hex;
}

// What Python reported for one tensor, against what we saved.
void check_tensor(const Json& seen, const std::string& name, const at::Tensor& saved) {
  INFO("tensor " << name);
  CHECK(seen["name"] == name);
  CHECK(seen["dtype"] == python_dtype(saved.scalar_type()));
  CHECK(seen["shape"].get<std::vector<int64_t>>() == saved.sizes().vec());
  CHECK(seen["stride"].get<std::vector<int64_t>>() == at::empty(saved.sizes()).strides().vec());
  CHECK(seen["storage_offset"] == 0);
  CHECK(seen["requires_grad"] == false);
  CHECK(seen["device"] == "cpu");
  CHECK(seen["hex"] == hex_bytes(saved));
}

std::vector<std::pair<std::string, at::Tensor>> sample_tensors() {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  auto f32 = at::arange(12, at::kFloat).reshape({3, 4}) * 0.25 - 1;
  f32[0][0] = std::numeric_limits<float>::quiet_NaN();
  f32[0][1] = std::numeric_limits<float>::infinity();
  f32[0][2] = -0.0f;
  f32[0][3] = std::numeric_limits<float>::denorm_min();
  tensors.emplace_back("mixlora.layers.0.mlp.moe_gate.weight", f32);
  tensors.emplace_back("transposed",
                       at::arange(6, at::kFloat).reshape({2, 3}).t());  // not contiguous
  tensors.emplace_back("bf16", (at::arange(-5, 5, at::kFloat) * 0.5 + 1.0 / 3).to(at::kBFloat16));
  tensors.emplace_back("f16", (at::arange(-4, 4, at::kFloat) / 3).to(at::kHalf));
  tensors.emplace_back("i64", at::tensor({int64_t{0}, int64_t{-1}, int64_t{1} << 40,
                                          std::numeric_limits<int64_t>::min()}));
  tensors.emplace_back("i32", at::arange(-3, 3, at::kInt));
  tensors.emplace_back("scalar", at::scalar_tensor(3.25, at::kFloat));
  tensors.emplace_back("empty", at::zeros({0, 4}));
  tensors.emplace_back("empty_last", at::zeros({4, 0}, at::kBFloat16));
  tensors.emplace_back("slice",
                       at::arange(20, at::kFloat).slice(0, 5, 11));  // contiguous, storage offset 5
  tensors.emplace_back("size_one_dims",
                       at::arange(3, at::kFloat).reshape({1, 3}).t());  // odd strides on size 1
  tensors.emplace_back("rows300", at::arange(600, at::kFloat).reshape({2, 300}));   // BININT2 sizes
  tensors.emplace_back("wide", at::arange(70000, at::kFloat).reshape({1, 70000}));  // BININT stride
  tensors.emplace_back("f64", at::arange(5, at::kDouble) / 7);
  tensors.emplace_back("i16", at::arange(-2, 2, at::kShort));
  tensors.emplace_back("i8", at::arange(-2, 2, at::kChar));
  tensors.emplace_back("u8", at::arange(250, 256, at::kLong).to(at::kByte));
  tensors.emplace_back("bool", at::arange(4, at::kLong).remainder(2).to(at::kBool));
  tensors.emplace_back("grad", at::ones({2}, at::TensorOptions().requires_grad(true)));
  tensors.emplace_back("layers.0.\xc3\xa4.weight", at::ones({1}));  // non-ASCII name, UTF-8
  return tensors;
}

}  // namespace

TEST_CASE("crc32 matches the standard check value", "[torch_bin]") {
  CHECK(crc32("123456789", 9) == 0xCBF43926u);
  CHECK(crc32("", 0) == 0u);
  CHECK(crc32("6789", 4, crc32("12345", 5)) == 0xCBF43926u);  // chained
}

TEST_CASE("torch.load(weights_only=True) reads back every tensor bit for bit", "[torch_bin]") {
  TempDir dir;
  const auto tensors = sample_tensors();
  const std::string path = dir / "adapter_model.bin";
  save_torch_bin(path, tensors);
  CHECK(dir.files() == std::vector<std::string>{"adapter_model.bin"});  // no temp file left

  const Json report = run_checker(dir, "state", path);
  INFO("python torch " << report["torch_version"]);
  CHECK(report["type"] == "OrderedDict");
  REQUIRE(report["tensors"].size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i)
    check_tensor(report["tensors"][i], tensors[i].first, tensors[i].second);
  if (report.contains("mmap_tensors"))
    for (size_t i = 0; i < tensors.size(); ++i)
      check_tensor(report["mmap_tensors"][i], tensors[i].first, tensors[i].second);

  SECTION("the archive is laid out as torch.save lays it out") {
    const Json& zip = report["zip"];
    CHECK(zip["testzip"].is_null());  // every CRC-32 right
    const auto& records = zip["records"];
    REQUIRE(records.size() == tensors.size() + 3);
    CHECK(records.front()["name"] == "archive/data.pkl");
    CHECK(records[1]["name"] == "archive/byteorder");
    CHECK(records.back()["name"] == "archive/version");
    for (size_t i = 0; i < tensors.size(); ++i) {
      CHECK(records[i + 2]["name"] == fmt::format("archive/data/{}", i));
      CHECK(records[i + 2]["size"] == tensors[i].second.nbytes());
    }
    for (const auto& record : records) {
      INFO("record " << record["name"]);
      CHECK(record["compress_type"] == 0);  // stored
      CHECK(record["local_signature_ok"] == true);
      CHECK(record["extra_tag"] == "FB");
      CHECK(record["data_offset"].get<int64_t>() % 64 == 0);
    }
    CHECK(zip["small_records"]["archive/version"] == "3\n");
    CHECK(zip["small_records"]["archive/byteorder"] == "little");
  }
}

TEST_CASE("an empty state dict loads as an empty OrderedDict", "[torch_bin]") {
  TempDir dir;
  const std::string path = dir / "empty.bin";
  save_torch_bin(path, {});
  const Json report = run_checker(dir, "state", path);
  CHECK(report["type"] == "OrderedDict");
  CHECK(report["tensors"].empty());
}

TEST_CASE("pickled integers of every width pass the weights-only unpickler", "[torch_bin]") {
  const std::vector<int64_t> values{0,
                                    1,
                                    255,
                                    256,
                                    65535,
                                    65536,
                                    -1,
                                    -256,
                                    std::numeric_limits<int32_t>::max(),
                                    std::numeric_limits<int32_t>::min(),
                                    int64_t{std::numeric_limits<int32_t>::max()} + 1,
                                    int64_t{std::numeric_limits<int32_t>::min()} - 1,
                                    int64_t{1} << 40,
                                    -(int64_t{1} << 40),
                                    int64_t{0xff} << 32,
                                    -(int64_t{0x80} << 32),
                                    std::numeric_limits<int64_t>::max(),
                                    std::numeric_limits<int64_t>::min()};
  PickleWriter pickle;
  pickle.mark();
  for (const int64_t v : values) pickle.integer(v);
  pickle.tuple_from_mark();
  const std::string bytes = pickle.finish();

  TempDir dir;
  const std::string path = dir.write("ints.pkl", bytes);
  const Json report = run_checker(dir, "pickle", path);
  CHECK(report["value"].get<std::vector<int64_t>>() == values);
}

TEST_CASE("save_torch_bin refuses bad input and leaves the old file alone", "[torch_bin]") {
  TempDir dir;
  const std::string path = dir.write("adapter_model.bin", "old");

  CHECK_THROWS_MATCHES(save_torch_bin(path, {{"a", at::ones({1})}, {"a", at::ones({1})}}),
                       RuntimeError, Catch::Matchers::Message(path + ": tensor 'a' given twice"));
  CHECK_THROWS_MATCHES(save_torch_bin(path, {{"u", at::Tensor()}}), RuntimeError,
                       Catch::Matchers::Message(path + ": tensor 'u' is undefined"));
  CHECK_THROWS_WITH(save_torch_bin(path, {{"c", at::ones({2}, at::kComplexFloat)}}),
                    Contains(path) && Contains("'c' has dtype ComplexFloat") &&
                        Contains("Float, Double, BFloat16"));
  CHECK(slurp(path) == "old");
  CHECK(dir.files() == std::vector<std::string>{"adapter_model.bin"});

  const std::string missing = dir / "no/such/dir/adapter_model.bin";
  CHECK_THROWS_WITH(save_torch_bin(missing, {{"a", at::ones({1})}}),
                    Contains(missing) && Contains("cannot create temporary file"));

  // A good save replaces the file in one step.
  save_torch_bin(path, {{"a", at::ones({1})}});
  CHECK(slurp(path).rfind("PK\x03\x04", 0) == 0);
  CHECK(dir.files() == std::vector<std::string>{"adapter_model.bin"});
}

TEST_CASE("StoredZipWriter aligns every record's data to 64 bytes", "[torch_bin]") {
  std::string archive;
  StoredZipWriter zip([&archive](const void* data, size_t size) {
    archive.append(static_cast<const char*>(data), size);
  });
  // Names of every length mod 64 shift the header; the data must still land aligned.
  for (size_t length = 1; length <= 70; ++length) {
    const std::string name = std::string(length, 'n');
    const std::string data = "payload " + std::to_string(length);
    zip.add(name, data.data(), data.size());
    const size_t data_start = archive.size() - data.size();
    INFO("name length " << length);
    CHECK(data_start % StoredZipWriter::kAlignment == 0);
    CHECK(archive.compare(data_start, data.size(), data) == 0);
  }
  // Archives that would need ZIP64 are refused before any data is read.
  CHECK_THROWS_AS(zip.add("huge", nullptr, size_t{5} << 30), std::length_error);
  zip.finish();
  CHECK(zip.bytes_written() == archive.size());
  CHECK(archive.compare(archive.size() - 22, 4, "PK\x05\x06") == 0);  // end of central directory
  CHECK_THROWS_AS(zip.add("late", "x", 1), std::logic_error);
}
