// The bad-input battery (docs/reliability.md): every case runs an executable the way a user
// would, on one broken input, and must end with exit code 2, one line on stderr naming the
// problem, nothing on stdout, no crash, and no output directory left behind.
#pragma once

#include "cli_runner.h"
#include "mixlora/io/pickle_writer.h"
#include "mixlora/io/zip_writer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mixlora::test::battery {

namespace fs = std::filesystem;

// The first `n` rows of the stories copy task (pre-tokenized, fit stories260K).
inline std::vector<std::string> good_rows(size_t n) {
  std::ifstream in(MIXLORA_TEST_SOURCE_DIR "/data/stories/train.jsonl");
  std::vector<std::string> rows;
  std::string line;
  while (rows.size() < n && std::getline(in, line)) rows.push_back(line);
  return rows;
}

inline std::string lines(const std::vector<std::string>& rows) {
  std::string text;
  for (const auto& r : rows) text += r + "\n";
  return text;
}

// A small training job on stories260K that succeeds as given; each case breaks one thing.
struct TrainJob {
  TempDir ws;
  std::string base_model = stories_dir();
  nlohmann::json config;
  std::string config_path = ws / "config.json";
  std::string out_dir = ws / "out";
  std::vector<std::string> extra;  // more flags

  TrainJob() {
    ws.write("data.jsonl", lines(good_rows(8)));
    config = {{"cutoff_len", 64},
              {"save_step", 1000},
              {"log_every", 1},
              {"lora",
               {{{"name", "a"},
                 {"data", ws / "data.jsonl"},
                 {"batch_size", 4},
                 {"micro_batch_size", 4},
                 {"num_epochs", 1},
                 {"r", 2},
                 {"lora_alpha", 4},
                 {"target_modules", {"q_proj", "v_proj"}}}}}};
  }
  nlohmann::json& adapter() { return config["lora"][0]; }
  // Writes the config (unless the case wrote config_path itself) and runs mixlora-train.
  CommandResult run(bool write_config = true) const {
    if (write_config) ws.write("config.json", config.dump(2));
    std::string line = "mixlora-train --config " + shell_quote(config_path) + " --base-model " +
                       shell_quote(base_model) + " --output-dir " + shell_quote(out_dir);
    for (const auto& e : extra) line += " " + shell_quote(e);
    return run_tool(line);
  }
};

// A model directory in `ws` holding stories260K's files, for a case to break one of them.
inline std::string copy_of_stories(const TempDir& ws, const std::string& name = "model") {
  const auto dir = ws / name;
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fs::path(stories_dir()) / f, fs::path(dir) / f,
                  fs::copy_options::overwrite_existing);
  return dir;
}

// SafeTensors bytes: little-endian header length, header, data.
inline std::string safetensors_bytes(const std::string& header, const std::string& data = "",
                                     uint64_t claimed_length = UINT64_MAX) {
  const uint64_t n = claimed_length == UINT64_MAX ? header.size() : claimed_length;
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return bytes + header + data;
}

// A torch.save-style zip (stored records under "archive/") holding the given records.
inline std::string torch_zip_bytes(
    const std::vector<std::pair<std::string, std::string>>& records) {
  std::string bytes;
  io::StoredZipWriter zip([&bytes](const void* data, size_t size) {
    bytes.append(static_cast<const char*>(data), size);
  });
  for (const auto& [name, content] : records)
    zip.add("archive/" + name, content.data(), content.size());
  zip.finish();
  return bytes;
}

// data.pkl of torch.save({name: float tensor}) whose storage "0" claims `numel` elements and whose
// view is (offset, sizes, strides): the shape a crafted file can lie about.
inline std::string float_tensor_pickle(const std::string& name, int64_t numel, int64_t offset,
                                       const std::vector<int64_t>& sizes,
                                       const std::vector<int64_t>& strides) {
  io::PickleWriter p;
  p.global("collections", "OrderedDict");
  p.empty_tuple();
  p.reduce();
  p.mark();
  p.string(name);
  p.global("torch._utils", "_rebuild_tensor_v2");
  p.mark();
  p.mark();
  p.string("storage");
  p.global("torch", "FloatStorage");
  p.string("0");
  p.string("cpu");
  p.integer(numel);
  p.tuple_from_mark();
  p.persistent_id();
  p.integer(offset);
  for (const auto* list : {&sizes, &strides}) {
    p.mark();
    for (auto v : *list) p.integer(v);
    p.tuple_from_mark();
  }
  p.boolean(false);
  p.global("collections", "OrderedDict");
  p.empty_tuple();
  p.reduce();
  p.tuple_from_mark();
  p.reduce();
  p.set_items();
  return p.finish();
}

// "[[[[...]]]]" nested `depth` deep.
inline std::string nesting_bomb(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

// With MIXLORA_BATTERY_TABLE=FILE, each case appends a row "| input | message |" of the
// table in docs/reliability.md.
inline void record_case(const std::string& what, const CommandResult& r) {
  const char* table = std::getenv("MIXLORA_BATTERY_TABLE");
  if (!table) return;
  std::string line = r.err.substr(0, r.err.find('\n'));
  for (size_t at; (at = line.find("/tmp/mixlora-test-")) != std::string::npos;) {
    const auto end = line.find('/', at + 18);
    line.replace(at, end == std::string::npos ? line.size() - at : end - at + 1, "");
  }
  for (size_t at = 0; (at = line.find('|', at)) != std::string::npos; at += 2)
    line.replace(at, 1, "\\|");
  std::ofstream(table, std::ios::app)
      << "| " << (what.size() > 60 ? what.substr(0, 57) + "..." : what) << " | " << r.exit_code
      << " | `" << line << "` |\n";
}

// The outcome every battery case must have.
inline void require_clean_input_error(const CommandResult& r,
                                      const std::vector<std::string>& messages,
                                      const std::string& out_dir = "",
                                      const std::string& what = "") {
  if (!what.empty()) record_case(what, r);
  INFO("exit " << r.exit_code << ", stderr: " << r.err << "stdout: " << r.out);
  CHECK(r.exit_code == 2);
  CHECK(count_lines(r.err) == 1);
  CHECK(r.out.empty());
  for (const auto& m : messages) CHECK_THAT(r.err, Catch::Matchers::Contains(m));
  CHECK_THAT(r.err, !Catch::Matchers::Contains("terminate") &&
                        !Catch::Matchers::Contains("Exception raised") &&
                        !Catch::Matchers::Contains("Sanitizer"));
  if (!out_dir.empty()) CHECK_FALSE(fs::exists(out_dir));
}

}  // namespace mixlora::test::battery
