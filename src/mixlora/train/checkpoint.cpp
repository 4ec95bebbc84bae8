#include "mixlora/train/checkpoint.h"

#include "mixlora/common/error.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/io/json_file.h"
#include "mixlora/io/safetensors.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <filesystem>
#include <regex>

namespace mixlora::train {

namespace fs = std::filesystem;

namespace {
const std::regex kCheckpointName(R"(checkpoint-(\d+))");
}

std::string save_checkpoint(const std::string& adapter_dir, int64_t step,
                            const adapters::Adapter& adapter, const std::string& base_model_name,
                            const CheckpointContent& content) {
  const fs::path final_dir = fs::path(adapter_dir) / fmt::format("checkpoint-{}", step);
  const fs::path temp_dir = fs::path(adapter_dir) / fmt::format(".checkpoint-{}.tmp", step);
  std::error_code ec;
  fs::remove_all(temp_dir, ec);
  try {
    adapter.save(temp_dir.string(), base_model_name);
    auto state = content.optimizer_state;
    state.emplace_back("rng_state", content.rng_state);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& [name, t] : state)
      tensors.emplace_back(name, t.detach().to(at::kCPU).contiguous());
    io::save_safetensors((temp_dir / "optimizer.safetensors").string(), tensors);
    io::write_file_atomically((temp_dir / "trainer_state.json").string(),
                              content.trainer_state.dump(2) + "\n");
  } catch (...) {
    fs::remove_all(temp_dir, ec);  // disk full or similar: leave only complete checkpoints behind
    throw;
  }
  fs::remove_all(final_dir, ec);  // a leftover of an interrupted earlier run at the same step
  fs::rename(temp_dir, final_dir, ec);
  if (ec) fail_runtime("{}: cannot finish the checkpoint: {}", final_dir.string(), ec.message());
  return final_dir.string();
}

int remove_incomplete(const std::string& adapter_dir) {
  static const std::regex temp_checkpoint(R"(\.checkpoint-\d+\.tmp)");
  static const std::regex temp_file(R"(.+\.tmp\.\d+)");
  std::error_code ec;
  std::vector<fs::path> leftovers;
  for (const auto& entry : fs::directory_iterator(adapter_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, temp_checkpoint) || std::regex_match(name, temp_file))
      leftovers.push_back(entry.path());
  }
  for (const auto& path : leftovers) fs::remove_all(path, ec);
  return static_cast<int>(leftovers.size());
}

std::optional<std::string> newest_checkpoint(const std::string& adapter_dir) {
  std::error_code ec;
  if (!fs::is_directory(adapter_dir, ec)) return std::nullopt;
  int64_t best_step = -1;
  std::string best;
  for (const auto& entry : fs::directory_iterator(adapter_dir, ec)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || !std::regex_match(name, match, kCheckpointName)) continue;
    if (!fs::exists(entry.path() / "trainer_state.json")) continue;  // not ours or damaged
    const int64_t step = std::stoll(match[1]);
    if (step > best_step) {
      best_step = step;
      best = entry.path().string();
    }
  }
  if (best_step < 0) return std::nullopt;
  return best;
}

CheckpointContent load_checkpoint(const std::string& checkpoint_dir, adapters::Adapter& adapter,
                                  const model::BaseModel& base) {
  CheckpointContent content;
  content.trainer_state =
      io::read_json_file((fs::path(checkpoint_dir) / "trainer_state.json").string());
  auto saved = adapters::Adapter::load(checkpoint_dir, base);
  {
    torch::NoGradGuard no_grad;
    auto target = adapter.state_dict();
    auto source = saved.state_dict();
    if (target.size() != source.size()) {
      fail_input(
          "{}: the checkpoint's adapter has {} tensors but the config builds {} (config changed "
          "since the checkpoint? use --overwrite to start over)",
          checkpoint_dir, source.size(), target.size());
    }
    for (size_t i = 0; i < target.size(); ++i) {
      if (target[i].first != source[i].first ||
          target[i].second.sizes() != source[i].second.sizes()) {
        fail_input(
            "{}: tensor '{}' does not match the config (config changed since the checkpoint?)",
            checkpoint_dir, source[i].first);
      }
      target[i].second.copy_(source[i].second);
    }
  }
  const auto file =
      io::SafeTensorsFile::open((fs::path(checkpoint_dir) / "optimizer.safetensors").string());
  for (const auto& info : file.tensors()) {
    if (info.name == "rng_state")
      content.rng_state = file.load(info.name);
    else
      content.optimizer_state.emplace_back(info.name, file.load(info.name).to(base.device));
  }
  if (!content.rng_state.defined())
    fail_input("{}: optimizer.safetensors has no rng_state", checkpoint_dir);
  return content;
}

}  // namespace mixlora::train
