// The weights of a Hugging Face model directory: `model.safetensors`, or the shards listed in
// `model.safetensors.index.json` ({"weight_map": {tensor name: shard file name}}).
#pragma once

#include "mixlora/io/safetensors.h"

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

namespace mixlora::io {

class WeightStore {
 public:
  // Opens and validates every file up front, so a bad shard fails before any weight is used.
  // Throws InputError naming the directory, index, shard and tensor involved.
  static WeightStore open_dir(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool contains(const std::string& name) const;
  std::vector<std::string> names() const;                 // sorted
  const TensorInfo& info(const std::string& name) const;  // throws InputError if absent
  at::Tensor load(const std::string& name) const;         // CPU copy, in the file's dtype

 private:
  struct Location {
    SafeTensorsFile file;  // copies share one mapping per shard
    const TensorInfo* info;
  };
  const Location& locate(const std::string& name) const;

  std::string dir_;
  std::map<std::string, Location> tensors_;
};

}  // namespace mixlora::io
