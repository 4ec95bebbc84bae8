#include "mixlora/bench/runner.h"

#include "mixlora/bench/device_stats.h"
#include "mixlora/bench/flops.h"
#include "mixlora/common/allocator.h"
#include "mixlora/common/cpu_info.h"
#include "mixlora/common/device.h"
#include "mixlora/common/error.h"
#include "mixlora/common/threads.h"
#include "mixlora/model/base_linear.h"
#include "mixlora/moe/router_stats.h"
#include "mixlora/train/adapter_run.h"
#include "mixlora/train/step.h"
#include <nlohmann/json.hpp>

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>

namespace mixlora::bench {

namespace {

const char* const kRuns[] = {"lora",           "mixlora", "mixlora-naive", "mixlora-dynamic",
                             "mixlora-switch", "fused-2", "sequential-2"};

config::AdapterConfig adapter_config(const std::string& name, bool mixlora, const BenchOptions& o) {
  config::AdapterConfig a;
  a.name = name;
  a.lora = {o.r, o.alpha, o.lora_dropout};
  a.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  a.batch_size = o.micro_batch;
  a.micro_batch_size = o.micro_batch;
  a.num_epochs = 1000000;  // never runs out of data
  a.peft_type = mixlora ? config::PeftType::mixlora : config::PeftType::lora;
  a.num_experts = o.num_experts;
  a.top_k = o.top_k;
  return a;
}

struct RunSpec {
  std::vector<config::AdapterConfig> adapters;
  moe::FfnPath path = moe::FfnPath::efficient;
  bool sequential = false;  // adapters step one after the other instead of in one fused batch
};

RunSpec run_spec(const std::string& name, const BenchOptions& o) {
  RunSpec spec;
  if (name == "lora") {
    spec.adapters = {adapter_config("lora", false, o)};
  } else if (name == "mixlora" || name == "mixlora-naive") {
    spec.adapters = {adapter_config("mixlora", true, o)};
    if (name == "mixlora-naive") spec.path = moe::FfnPath::naive;
  } else if (name == "mixlora-dynamic") {
    auto a = adapter_config("dynamic", true, o);
    a.routing_strategy = config::RoutingStrategy::mixlora_dynamic;
    spec.adapters = {a};
  } else if (name == "mixlora-switch") {
    auto a = adapter_config("switch", true, o);
    a.routing_strategy = config::RoutingStrategy::mixlora_switch;
    a.router_init_range = 1.0;  // MoE-PEFT's switch defaults
    a.jitter_noise = 0.01;
    a.capacity_factor = 1.25;
    spec.adapters = {a};
  } else if (name == "fused-2" || name == "sequential-2") {
    spec.adapters = {adapter_config("mixlora-a", true, o), adapter_config("mixlora-b", true, o)};
    spec.sequential = name == "sequential-2";
  } else {
    fail_input("--runs: unknown run '{}' (known: {})", name, fmt::join(run_names(), ", "));
  }
  return spec;
}

// Rows of random tokens, all of full length (no padding), every position labelled.
std::vector<data::Sample> synthetic_samples(int64_t count, int64_t seq_len, int64_t vocab,
                                            uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> token(3, vocab - 1);
  std::vector<data::Sample> samples(count);
  for (auto& s : samples) {
    s.input_ids.resize(seq_len);
    for (auto& t : s.input_ids) t = token(rng);
    s.labels = s.input_ids;
  }
  return samples;
}

// CPU seconds (user + system, all threads) of this process so far. On a shared machine this
// is steadier than wall time.
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec);
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Experts a token uses, averaged over tokens and layers: routing of one no-grad forward over
// the adapter's next micro-batch with the weights the timed steps left. top_k for top-k routing;
// for top-p (mixlora-dynamic) it depends on how peaked the router is.
double mean_experts_per_token(const model::Decoder& decoder, train::AdapterRun& run) {
  at::NoGradGuard no_grad;
  const auto micro = run.next_micro_batch();
  const auto batch = data::make_batch(micro, /*pad_id=*/0);
  const auto mask = batch.attention_mask.to(decoder.model().device);
  adapters::AdapterHooks hooks(
      {{&run.adapter(), 0, static_cast<int64_t>(micro.size()), c10::nullopt}}, mask,
      /*training=*/false);
  hooks.keep_routing(true);
  decoder.hidden_states(batch.input_ids.to(decoder.model().device), mask, nullptr, &hooks);
  double used = 0.0, tokens = 0.0;
  for (const auto& routing : hooks.routings(0)) {
    used += routing.experts.ge(0).sum().item<double>();
    tokens += static_cast<double>(routing.experts.size(0));
  }
  return tokens > 0.0 ? used / tokens : 0.0;
}

// One benchmark run: its adapters, their data and the step the trainer would take. Built and
// warmed up one run at a time (so its peak memory is its own), then stepped in interleaved
// rounds with the other runs (run_bench).
class BenchRun {
 public:
  BenchRun(std::string name, const model::BaseModel& base, const model::Decoder& decoder,
           const BenchOptions& o)
      : name_(std::move(name)),
        spec_(run_spec(name_, o)),
        base_(base),
        decoder_(decoder),
        options_(o),
        step_options_{spec_.path, o.gradient_checkpointing, o.router_telemetry, o.full_lm_loss} {
    reset_peak_memory(base.device);
    for (size_t i = 0; i < spec_.adapters.size(); ++i) {
      runs_.push_back(std::make_unique<train::AdapterRun>(
          spec_.adapters[i], base,
          synthetic_samples(4 * o.micro_batch, o.seq_len, base.config.vocab_size, o.seed + i),
          o.seed));
    }
    static_mem_mb_ = current_memory_mb(base.device);
    for (int64_t i = 0; i < o.warmup; ++i) step();
    peak_mem_mb_ = peak_memory_mb(base.device);
    loss_sum_ = 0.0;
    loss_count_ = 0;
  }

  const std::string& name() const { return name_; }

  // Times one step; returns its wall seconds.
  double timed_step() {
    using clock = std::chrono::steady_clock;
    synchronize(base_.device);
    const auto t0 = clock::now();
    const double c0 = cpu_seconds();
    tokens_per_step_ = step();
    synchronize(base_.device);
    const double wall = std::chrono::duration<double>(clock::now() - t0).count();
    seconds_.push_back(wall);
    cpu_.push_back(cpu_seconds() - c0);
    return wall;
  }

  // One more step under LibTorch's profiler, written as a chrome://tracing file.
  void profiled_step(const std::string& path) {
    torch::autograd::profiler::RecordProfile profile(path);
    step();
  }

  RunResult result(double peak_gflops) {
    if (options_.router_telemetry)
      spdlog::debug("{}: router telemetry wrote {} bytes of JSON", name_, telemetry_bytes_);
    RunResult r;
    r.name = name_;
    r.seconds = seconds_;
    const double s = median(seconds_);
    r.ms_per_step = s * 1e3;
    r.cpu_ms_per_step = median(cpu_) * 1e3;
    r.tokens_per_s = static_cast<double>(tokens_per_step_) / s;
    r.peak_mem_mb = peak_mem_mb_;
    r.static_mem_mb = static_mem_mb_;
    for (const auto& run : runs_) r.trainable_params += run->adapter().num_parameters();
    r.experts_per_token = runs_.front()->adapter().is_mixlora()
                              ? mean_experts_per_token(decoder_, *runs_.front())
                              : 0.0;
    r.flops_per_token = useful_flops_per_token(base_.config, spec_.adapters[0], options_.seq_len,
                                               r.experts_per_token);
    r.mfu = peak_gflops > 0.0 ? r.flops_per_token * r.tokens_per_s / (peak_gflops * 1e9) : 0.0;
    r.loss = loss_count_ > 0 ? loss_sum_ / static_cast<double>(loss_count_) : 0.0;
    return r;
  }

 private:
  // One training step of the given adapters in one fused batch, exactly as the trainer does it.
  int64_t fused_step(const std::vector<train::AdapterRun*>& group) {
    std::vector<const data::Sample*> rows;
    std::vector<adapters::AdapterSegment> segments;
    for (auto* run : group) {
      auto micro = run->next_micro_batch();
      segments.push_back({&run->adapter(), static_cast<int64_t>(rows.size()),
                          static_cast<int64_t>(micro.size()), run->generator()});
      rows.insert(rows.end(), micro.begin(), micro.end());
    }
    const auto batch = data::make_batch(rows, /*pad_id=*/0);
    const std::vector<int64_t> accumulation(group.size(), 1);
    const auto losses =
        train::forward_backward(decoder_, batch, segments, accumulation, step_options_);
    if (options_.router_telemetry) {
      // As a step the trainer logs with log_every = 1: one read, the summary and its JSON.
      for (size_t k = 0; k < group.size(); ++k) {
        if (!losses[k].router.defined()) continue;
        moe::RouterStatAccumulator pending;
        pending.add(losses[k].router);
        telemetry_bytes_ +=
            moe::router_json(
                moe::summarize(pending.read(), group[k]->adapter().config.moe_options()))
                .dump()
                .size();
      }
    }
    for (auto* run : group) {
      run->finish_micro_batch();
      run->optimizer_step(/*max_grad_norm=*/0.0);
    }
    int64_t tokens = 0;
    for (const auto& l : losses) {
      tokens += l.tokens;
      loss_sum_ += l.task;
      ++loss_count_;
    }
    return tokens;
  }

  int64_t step() {
    std::vector<train::AdapterRun*> all;
    for (auto& r : runs_) all.push_back(r.get());
    if (!spec_.sequential) return fused_step(all);
    int64_t tokens = 0;
    for (auto* r : all) tokens += fused_step({r});
    return tokens;
  }

  std::string name_;
  RunSpec spec_;
  const model::BaseModel& base_;
  const model::Decoder& decoder_;
  const BenchOptions& options_;
  train::StepOptions step_options_;
  std::vector<std::unique_ptr<train::AdapterRun>> runs_;
  double static_mem_mb_ = 0.0, peak_mem_mb_ = 0.0;
  double loss_sum_ = 0.0;
  int64_t loss_count_ = 0;
  size_t telemetry_bytes_ = 0;  // keeps the telemetry work observable
  int64_t tokens_per_step_ = 0;
  std::vector<double> seconds_, cpu_;
};

// Each run's speed relative to the baseline, per round: baseline seconds / run seconds of the
// same round. The median is the figure; min and max show how much the rounds disagree.
void add_speedups(BenchReport& report) {
  const auto& base = *std::find_if(report.runs.begin(), report.runs.end(),
                                   [&](const RunResult& r) { return r.name == report.baseline; });
  const auto base_seconds = base.seconds;  // copied: `base` is one of the runs updated below
  for (auto& run : report.runs) {
    std::vector<double> ratios;
    for (size_t i = 0; i < run.seconds.size(); ++i)
      ratios.push_back(base_seconds[i] / run.seconds[i]);
    run.speedup = median(ratios);
    run.speedup_min = *std::min_element(ratios.begin(), ratios.end());
    run.speedup_max = *std::max_element(ratios.begin(), ratios.end());
  }
}

}  // namespace

const std::vector<std::string>& run_names() {
  static const std::vector<std::string> names(std::begin(kRuns), std::end(kRuns));
  return names;
}

BenchReport run_bench(const model::BaseModel& base, const BenchOptions& options) {
  const auto& names = options.runs.empty() ? run_names() : options.runs;
  for (const auto& n : names) run_spec(n, options);  // unknown names fail before any work
  if (!options.baseline.empty() &&
      std::find(names.begin(), names.end(), options.baseline) == names.end()) {
    fail_input("--baseline: '{}' is not one of the runs ({})", options.baseline,
               fmt::join(names, ", "));
  }
  if (options.seq_len < 2 || options.micro_batch < 1 || options.steps < 1 || options.warmup < 0) {
    fail_input("--seq-len must be >= 2, --micro-batch and --steps >= 1, --warmup >= 0");
  }
  if (options.seq_len > base.config.max_position_embeddings) {
    fail_input("--seq-len {} exceeds the model's max_position_embeddings ({})", options.seq_len,
               base.config.max_position_embeddings);
  }
  BenchReport report;
  report.device = base.device.str();
  report.dtype = dtype_name(base.dtype);
  report.preset = options.preset;
  report.threads = common::thread_setup().torch_threads;
  report.blas_threads = common::thread_setup().blas_threads;
  report.blas = common::thread_setup().blas;
  report.seq_len = options.seq_len;
  report.micro_batch = options.micro_batch;
  report.gradient_checkpointing = options.gradient_checkpointing;
  report.full_lm_loss = options.full_lm_loss;
  report.matmul_peak_gflops_fp32 =
      matmul_peak_gflops(base.device, at::kFloat, options.matmul_size, options.matmul_seconds);
  report.matmul_peak_gflops_dtype =
      base.dtype == at::kFloat ? report.matmul_peak_gflops_fp32
                               : matmul_peak_gflops(base.device, base.dtype, options.matmul_size,
                                                    options.matmul_seconds);
  // The MFU denominator is the kernel the steps use: fp32 where low precision is upcast.
  report.native_matmul = model::fast_matmul(base.device, base.dtype);
  report.matmul_peak_gflops =
      report.native_matmul ? report.matmul_peak_gflops_dtype : report.matmul_peak_gflops_fp32;
  spdlog::info("matmul peak {:.1f} GFLOP/s ({}, {}^3)", report.matmul_peak_gflops,
               report.native_matmul ? report.dtype : std::string("fp32"), options.matmul_size);
  report.allocator = common::active_malloc();
  report.cpu_model = common::cpu_info().model;
  report.cpu_flags = common::cpu_info().simd_flags();
  const model::Decoder decoder(base);
  std::vector<std::unique_ptr<BenchRun>> runs;
  for (const auto& name : names) {
    runs.push_back(std::make_unique<BenchRun>(name, base, decoder, options));
    spdlog::info("{}: set up and warmed up, peak {:.0f} MiB", name, peak_memory_mb(base.device));
  }
  // Round r times one step of every run, starting at run r mod n: the machine's drift over
  // minutes then hits every run alike, and each ratio compares steps seconds apart.
  for (int64_t round = 0; round < options.steps; ++round) {
    for (size_t k = 0; k < runs.size(); ++k)
      runs[(static_cast<size_t>(round) + k) % runs.size()]->timed_step();
  }
  for (auto& run : runs) {
    if (!options.profile_prefix.empty())
      run->profiled_step(options.profile_prefix + run->name() + ".trace.json");
    report.runs.push_back(run->result(report.matmul_peak_gflops));
  }
  report.baseline = options.baseline.empty() ? report.runs.front().name : options.baseline;
  add_speedups(report);
  for (const auto& r : report.runs) {
    spdlog::info(
        "{}: {:.1f} tokens/s, {:.1f} ms/step, {:.2f}x {} [{:.2f}, {:.2f}], peak {:.0f} MiB, loss "
        "{:.4f}",
        r.name, r.tokens_per_s, r.ms_per_step, r.speedup, report.baseline, r.speedup_min,
        r.speedup_max, r.peak_mem_mb, r.loss);
  }
  return report;
}

}  // namespace mixlora::bench
