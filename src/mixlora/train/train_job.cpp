#include "mixlora/train/train_job.h"

#include "mixlora/common/build_info.h"
#include "mixlora/common/device.h"
#include "mixlora/common/error.h"
#include "mixlora/data/dataset.h"
#include "mixlora/data/tokenizer.h"
#include "mixlora/model/base_model.h"
#include "mixlora/train/distributed.h"

#include <torch/cuda.h>
#if MIXLORA_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <filesystem>
#include <optional>

namespace mixlora::train {

namespace {

// Joins the world of job.ranks; one GPU per rank on a node: "cuda" becomes cuda:<local rank>
// (modulo the GPUs this task sees, for launchers that bind one GPU per task).
std::unique_ptr<Communicator> join_ranks(TrainJob& job) {
  const auto& ranks = job.ranks;
  if (!(job.dist_timeout_s > 0))
    fail_input("--dist-timeout: must be > 0 seconds, got {}", job.dist_timeout_s);
  if (job.device.is_cuda()) {
    job.device = rank_device(job.device_flag, job.device, ranks.local_rank,
                             static_cast<int64_t>(torch::cuda::device_count()));
#if MIXLORA_WITH_CUDA
    // The rank's GPU becomes the current one: NCCL's communicator, cuBLAS handles and the
    // caching allocator of this process then leave the other ranks' GPUs alone.
    c10::cuda::set_device(job.device.index());
#endif
  }
  if (ranks.rank != 0)
    spdlog::set_level(std::max(spdlog::get_level(), spdlog::level::warn));  // rank 0 speaks
  spdlog::info("rank {} of {} ({}), rendezvous at {}:{}", ranks.rank, ranks.world_size,
               ranks.source, ranks.master_addr, ranks.master_port);
  CommunicatorOptions options;
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(job.dist_timeout_s * 1000));
  options.backend = job.dist_backend;
  options.device = job.device;
  auto comm = Communicator::connect(ranks, options);
  spdlog::info("{} ranks joined over {}", comm->world_size(), comm->backend());
  return comm;
}

std::vector<AdapterSummary> load_and_train(const config::TrainConfig& config,
                                           const std::string& config_path, const TrainJob& job) {
  auto options = job.trainer;
  if (!options.comm || options.comm->rank() == 0) prepare_output(config, options);
  const auto model = model::load_base_model(config.base_model, job.dtype, job.device);
  std::optional<data::Tokenizer> tokenizer;
  if (data::Tokenizer::model_dir_has_tokenizer(config.base_model)) {
    tokenizer = data::Tokenizer::from_model_dir(config.base_model);
  }
  const auto* tokens = tokenizer ? &*tokenizer : nullptr;
  options.pad_id = tokenizer && tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;

  data::DatasetOptions data_options;
  data_options.cutoff_len =
      config::resolve_cutoff_len(config, config_path, model.config.max_position_embeddings);
  data_options.skip_bad_rows = job.skip_bad_rows;
  data_options.vocab_size = model.config.vocab_size;
  std::vector<std::vector<data::Sample>> samples;
  std::vector<std::vector<data::TaskData>> eval_sets;
  for (const auto& adapter : config.adapters) {
    std::vector<data::Sample> all;
    for (auto& task : data::load_task_data(adapter, tokens, data_options)) {
      spdlog::info("adapter '{}': {} samples of {} from {}{}", adapter.name, task.samples.size(),
                   task.task_name, task.path,
                   task.skipped ? fmt::format(" ({} bad rows skipped)", task.skipped) : "");
      std::move(task.samples.begin(), task.samples.end(), std::back_inserter(all));
    }
    samples.push_back(std::move(all));
    eval_sets.push_back(config.eval_every > 0 ? data::load_eval_data(adapter, tokens, data_options)
                                              : std::vector<data::TaskData>{});
  }
  return train(config, model, std::move(samples), options, eval_sets);
}

}  // namespace

std::vector<AdapterSummary> run_train_job(const config::TrainConfig& config,
                                          const std::string& config_path, TrainJob job) {
  if (job.ranks.world_size <= 1) return load_and_train(config, config_path, job);
  const auto comm = join_ranks(job);
  job.trainer.comm = comm.get();
  try {
    return load_and_train(config, config_path, job);
  } catch (const std::exception& e) {
    comm->report_failure(e.what());  // the other ranks say why at their next collective
    throw;
  }
}

}  // namespace mixlora::train
