#include "mixlora/io/weight_store.h"

#include "mixlora/common/error.h"
#include "mixlora/io/json_file.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace mixlora::io {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

bool is_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// We only read SafeTensors: unpickling a .bin can run arbitrary code.
[[noreturn]] void fail_pickle_only(const std::string& dir) {
  fail_input(
      "{}: only PyTorch pickle weights (pytorch_model.bin) found; mixlora reads SafeTensors only "
      "and never "
      "unpickles. Convert once in Python: from safetensors.torch import save_file; import torch; "
      "save_file(torch.load('{}/pytorch_model.bin'), '{}/model.safetensors', metadata={{'format': "
      "'pt'}}) "
      "(clone tied weights first if save_file complains about shared tensors)",
      dir, dir, dir);
}

}  // namespace

WeightStore WeightStore::open_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) fail_input("{}: model directory does not exist", dir);
  if (!fs::is_directory(dir, ec))
    fail_input("{}: not a directory, expected a Hugging Face model directory", dir);

  WeightStore store;
  store.dir_ = dir;
  const fs::path root(dir);

  if (is_file(root / kSingleFile)) {
    const auto file = SafeTensorsFile::open((root / kSingleFile).string());
    for (const auto& t : file.tensors()) store.tensors_.emplace(t.name, Location{file, &t});
    return store;
  }

  if (!is_file(root / kIndexFile)) {
    if (is_file(root / "pytorch_model.bin") || is_file(root / "pytorch_model.bin.index.json"))
      fail_pickle_only(dir);
    fail_input("{}: no weights found, expected {} or {} in this directory", dir, kSingleFile,
               kIndexFile);
  }

  const std::string index_path = (root / kIndexFile).string();
  const nlohmann::json index = read_json_file(index_path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail_input("{}: expected an object with a \"weight_map\" object of tensor name -> shard file",
               index_path);

  std::map<std::string, SafeTensorsFile> shards;  // each shard opened once
  for (const auto& [name, shard_value] : index["weight_map"].items()) {
    if (!shard_value.is_string())
      fail_input("{}: weight_map entry '{}' is {}, expected a shard file name", index_path, name,
                 describe(shard_value));
    const std::string shard = shard_value.get<std::string>();
    // Shards live beside the index; a path must not lead the reader elsewhere.
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
      fail_input("{}: tensor '{}' maps to '{}', expected a file name in the same directory",
                 index_path, name, shard);

    auto it = shards.find(shard);
    if (it == shards.end()) {
      if (!is_file(root / shard))
        fail_input(
            "{}: tensor '{}' is in shard '{}', which is missing from {} (incomplete download?)",
            index_path, name, shard, dir);
      it = shards.emplace(shard, SafeTensorsFile::open((root / shard).string())).first;
    }
    const TensorInfo* info = it->second.find(name);
    if (!info)
      fail_input("{}: tensor '{}' is mapped to shard '{}', but that shard has no such tensor",
                 index_path, name, shard);
    store.tensors_.emplace(name, Location{it->second, info});
  }
  return store;
}

bool WeightStore::contains(const std::string& name) const { return tensors_.count(name) > 0; }

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, location] : tensors_) names.push_back(name);
  return names;  // std::map iterates in sorted order
}

const WeightStore::Location& WeightStore::locate(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end())
    fail_input("{}: checkpoint has no tensor '{}' (wrong base model?)", dir_, name);
  return it->second;
}

const TensorInfo& WeightStore::info(const std::string& name) const { return *locate(name).info; }

at::Tensor WeightStore::load(const std::string& name) const {
  const Location& location = locate(name);
  return location.file.load(location.info->name);
}

}  // namespace mixlora::io
