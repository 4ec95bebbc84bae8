// Data-parallel training (SPEC section 10): rank discovery from torchrun, Slurm and flags, and
// mixlora-train run as two Gloo ranks on 127.0.0.1 -- the same adapters as one process with the
// same global batch, and a lost, stuck or failing rank ending every rank with an error in bounded
// time.
#include "cli_runner.h"

#include "mixlora/common/error.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/train/rank_discovery.h"

#include "catch.h"
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

namespace fs = std::filesystem;
using namespace mixlora;
using mixlora::test::shell_quote;
using mixlora::test::slurp;
using mixlora::test::stories_dir;
using mixlora::test::TempDir;
using train::discover_ranks;
using train::first_slurm_host;
using train::RankFlags;

namespace {

train::EnvLookup env_of(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

// A TCP port nobody listens on now (the kernel's pick; released for the rank 0 store to take).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// One mixlora-train process in the background, its output in files.
struct Rank {
  pid_t pid = -1;
  std::string out_path, err_path;
  int exit_code = -1;
  double seconds = 0.0;  // from start to exit
  std::chrono::steady_clock::time_point start;

  std::string err() const { return slurp(err_path); }
  std::string out() const { return slurp(out_path); }
};

Rank start_rank(const std::vector<std::string>& args, const std::string& files) {
  Rank r;
  r.out_path = files + ".out";
  r.err_path = files + ".err";
  // exec: the pid is mixlora-train's own, so that a signal reaches the trainer, not a shell.
  std::string line = fmt::format("cd {} && exec {}/mixlora-train",
                                 shell_quote(MIXLORA_TEST_SOURCE_DIR), MIXLORA_TEST_BIN_DIR);
  for (const auto& a : args) line += " " + shell_quote(a);
  line += fmt::format(" >{} 2>{}", shell_quote(r.out_path), shell_quote(r.err_path));
  r.start = std::chrono::steady_clock::now();
  r.pid = ::fork();
  REQUIRE(r.pid >= 0);
  if (r.pid == 0) {
    ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return r;
}

// Waits up to `limit_s` for the rank to exit; a rank still running then is killed and reported
// with exit code -1 (the caller's CHECK fails: a hang, never a passing test).
void wait_rank(Rank& r, double limit_s) {
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(r.pid, &status, WNOHANG);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.start).count();
    if (done == r.pid) {
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return;
    }
    if (r.seconds > limit_s) {
      ::kill(r.pid, SIGKILL);
      ::waitpid(r.pid, &status, 0);
      r.exit_code = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Waits until `text` appears in the rank's stderr (false after `limit_s`).
bool wait_for_log(const Rank& r, const std::string& text, double limit_s) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  while (std::chrono::steady_clock::now() < until) {
    if (r.err().find(text) != std::string::npos) return true;
    int status = 0;
    if (::waitpid(r.pid, &status, WNOHANG) == r.pid)
      return false;  // exited (status lost: a test failure anyway)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

using mixlora::test::stories_rows;
using mixlora::test::write_lines;

std::vector<std::string> dist_flags(int rank, int port, int timeout_s) {
  return {"--world-size",   "2",
          "--rank",         std::to_string(rank),
          "--master-addr",  "127.0.0.1",
          "--master-port",  std::to_string(port),
          "--dist-timeout", std::to_string(timeout_s)};
}

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::vector<nlohmann::json> records;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  return records;
}

// The largest difference between two adapter files' tensors, relative to each tensor's scale.
double worst_relative_difference(const std::string& a_path, const std::string& b_path) {
  const auto a = io::SafeTensorsFile::open(a_path);
  const auto b = io::SafeTensorsFile::open(b_path);
  REQUIRE(a.tensors().size() == b.tensors().size());
  double worst = 0.0;
  for (const auto& t : a.tensors()) {
    const auto x = a.load(t.name), y = b.load(t.name);
    REQUIRE(x.sizes() == y.sizes());
    const double scale = std::max(1e-6, x.abs().max().item<double>());
    worst = std::max(worst, (x - y).abs().max().item<double>() / scale);
  }
  return worst;
}

}  // namespace

TEST_CASE("rank discovery: torchrun variables, Slurm variables, flags over both", "[distributed]") {
  SECTION("nothing set: one process") {
    const auto r = discover_ranks({}, env_of({}));
    CHECK(r.world_size == 1);
    CHECK(r.rank == 0);
    CHECK(r.source == "single process");
  }
  SECTION("torchrun") {
    const auto r = discover_ranks({}, env_of({{"RANK", "3"},
                                              {"WORLD_SIZE", "8"},
                                              {"LOCAL_RANK", "1"},
                                              {"MASTER_ADDR", "node7"},
                                              {"MASTER_PORT", "29411"},
                                              {"SLURM_PROCID", "0"},
                                              {"SLURM_NTASKS", "2"}}));
    CHECK(r.rank == 3);
    CHECK(r.world_size == 8);
    CHECK(r.local_rank == 1);
    CHECK(r.master_addr == "node7");
    CHECK(r.master_port == 29411);
    CHECK(r.source == "torchrun");
    CHECK_FALSE(r.agent_store);
    const auto agent = discover_ranks({}, env_of({{"RANK", "0"},
                                                  {"WORLD_SIZE", "2"},
                                                  {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                                  {"TORCHELASTIC_RESTART_COUNT", "2"}}));
    CHECK(agent.agent_store);
    CHECK(agent.store_prefix == "/worker/attempt_2");
  }
  SECTION("Slurm, master from the node list") {
    const auto r = discover_ranks({}, env_of({{"SLURM_PROCID", "5"},
                                              {"SLURM_NTASKS", "8"},
                                              {"SLURM_LOCALID", "1"},
                                              {"SLURM_JOB_NODELIST", "gpu[003-006,010],login1"}}));
    CHECK(r.rank == 5);
    CHECK(r.world_size == 8);
    CHECK(r.local_rank == 1);
    CHECK(r.master_addr == "gpu003");
    CHECK(r.master_port == 29500);
    CHECK(r.source == "slurm");
    const auto with_master = discover_ranks({}, env_of({{"SLURM_PROCID", "0"},
                                                        {"SLURM_NTASKS", "2"},
                                                        {"SLURM_NODELIST", "a,b"},
                                                        {"MASTER_ADDR", "10.0.0.9"}}));
    CHECK(with_master.master_addr == "10.0.0.9");
  }
  SECTION("flags win over the environment") {
    RankFlags flags;
    flags.rank = 1;
    flags.master_port = 31000;
    const auto r = discover_ranks(flags, env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}}));
    CHECK(r.rank == 1);
    CHECK(r.world_size == 2);
    CHECK(r.master_port == 31000);
    CHECK(r.source == "torchrun + flags");
  }
  SECTION("malformed values name their source") {
    REQUIRE_INPUT_ERROR(discover_ranks({}, env_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}})),
                        Catch::Matchers::Contains("RANK: expected an integer, got 'x'"));
    REQUIRE_INPUT_ERROR(discover_ranks({}, env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}})),
                        Catch::Matchers::Contains("rank 2 is outside [0, 2)"));
    REQUIRE_INPUT_ERROR(discover_ranks({}, env_of({{"WORLD_SIZE", "2"}})),
                        Catch::Matchers::Contains("WORLD_SIZE is set but RANK is not"));
    RankFlags port;
    port.master_port = 70000;
    REQUIRE_INPUT_ERROR(discover_ranks(port, env_of({})),
                        Catch::Matchers::Contains("master port must be in [1, 65535]"));
  }
}

TEST_CASE("first host of a Slurm node list", "[distributed]") {
  CHECK(first_slurm_host("node[01-04],x") == "node01");
  CHECK(first_slurm_host("node[07,09-12]") == "node07");
  CHECK(first_slurm_host("gpu-a,gpu-b") == "gpu-a");
  CHECK(first_slurm_host("single") == "single");
  CHECK(first_slurm_host("rack[2-3]-n[5-6]") == "rack2-n5");
  REQUIRE_INPUT_ERROR(first_slurm_host("node[01-04"), Catch::Matchers::Contains("without its ']'"));
}

// The equality test trains the three fused adapters of multi-task.json (MixLoRA top-k, Switch,
// LoRA) with 2, 1 and 3 micro-batches per step: a step's micro-batches spread over both ranks,
// come from one rank, or split unevenly. Dropout and Switch jitter are off: they draw from each
// rank's own generator. The LoRA adapter with 3 micro-batches uses SGD: its gradient is summed
// in another order than alone (fp32 rounding), which Adam's normalisation would magnify on
// near-zero gradient entries; the two others agree bit for bit with Adam.
TEST_CASE("two Gloo ranks train the same adapters as one process with the same global batch",
          "[distributed][cli]") {
  TempDir ws;
  write_lines(ws / "rows.jsonl", stories_rows(12));
  std::vector<std::string> args = {"--config",     "configs/multi-task.json",
                                   "--base-model", stories_dir(),
                                   "--threads",    "1",
                                   "--set",        "log_every=1",
                                   "--set",        "save_step=2",
                                   "--set",        "lora[0].batch_size=4",
                                   "--set",        "lora[0].micro_batch_size=2",
                                   "--set",        "lora[1].batch_size=4",
                                   "--set",        "lora[1].micro_batch_size=4",
                                   "--set",        "lora[2].batch_size=6",
                                   "--set",        "lora[2].micro_batch_size=2",
                                   "--set",        "lora[1].jitter_noise=0",
                                   "--set",        "lora[0].lr=0.01",
                                   "--set",        "lora[2].optim=sgd",
                                   "--set",        "eval_every=2"};
  for (int i = 0; i < 3; ++i) {
    // Held-out scoring is sharded over the ranks: 3-row eval batches, rank r scores batches r, r +
    // 2, ...
    args = args + std::vector<std::string>{
                      "--set", fmt::format("lora[{}].data={}", i, ws / "rows.jsonl"),
                      "--set", fmt::format("lora[{}].lora_dropout=0", i),
                      "--set", fmt::format("lora[{}].eval_data=data/stories/test.jsonl", i),
                      "--set", fmt::format("lora[{}].evaluate_batch_size=3", i)};
  }
  const auto one_dir = ws / "one", two_dir = ws / "two";
  const int port = free_port();
  // 8 KiB gradient buckets (the adapters have 36-268 KB of parameters): several per adapter, so
  // that some leave during the backward pass (gradient_buckets.h) while the rest follow after it.
  ::setenv("MIXLORA_BUCKET_MB", "0.0078125", 1);
  auto rank0 =
      start_rank(args + std::vector<std::string>{"--output-dir", two_dir} + dist_flags(0, port, 60),
                 ws / "r0");
  auto rank1 =
      start_rank(args + std::vector<std::string>{"--output-dir", two_dir} + dist_flags(1, port, 60),
                 ws / "r1");
  ::unsetenv("MIXLORA_BUCKET_MB");
  auto single = start_rank(args + std::vector<std::string>{"--output-dir", one_dir}, ws / "single");
  wait_rank(rank0, 120);
  wait_rank(rank1, 120);
  wait_rank(single, 120);
  INFO("rank 0:\n" << rank0.err() << "\nrank 1:\n" << rank1.err() << "\nsingle:\n" << single.err());
  REQUIRE(single.exit_code == 0);
  REQUIRE(rank0.exit_code == 0);
  // Rank 1 exits 0 only when every adapter's weights equalled rank 0's bit for bit at the end.
  REQUIRE(rank1.exit_code == 0);
  CHECK_THAT(rank0.err(), Catch::Matchers::Contains("2 ranks joined over gloo"));
  {
    // "data-parallel: E of T gradient buckets (all ranks) were sent during the backward pass", E >
    // 0.
    const auto log = rank0.err();
    const auto at = log.find("data-parallel: ");
    REQUIRE(at != std::string::npos);
    long early = -1, total = -1;
    REQUIRE(std::sscanf(log.c_str() + at, "data-parallel: %ld of %ld gradient buckets", &early,
                        &total) == 2);
    CHECK(early > 0);
    CHECK(early < total);
  }
  CHECK(rank1.out().empty());  // rank 0 alone reports
  for (const std::string name : {"stories-mixlora", "stories-switch", "stories-lora"}) {
    INFO("adapter " << name);
    CHECK_THAT(rank0.out(), Catch::Matchers::Contains(name + ": "));
    const auto one = fs::path(one_dir) / name, two = fs::path(two_dir) / name;
    CHECK(worst_relative_difference((one / "adapter_model.safetensors").string(),
                                    (two / "adapter_model.safetensors").string()) < 1e-5);
    CHECK(slurp((one / "adapter_config.json").string()) ==
          slurp((two / "adapter_config.json").string()));
    // The logged losses are the global batch's: every micro-batch of every rank counted once.
    const auto m1 = read_metrics((one / "metrics.jsonl").string());
    const auto m2 = read_metrics((two / "metrics.jsonl").string());
    REQUIRE(m1.size() == m2.size());
    REQUIRE(!m1.empty());
    int64_t eval_records = 0;
    for (size_t i = 0; i < m1.size(); ++i) {
      CHECK(m2[i]["step"] == m1[i]["step"]);
      if (m1[i].contains("eval")) {
        // The ranks' summed shares of the held-out batches: the one-process scores.
        ++eval_records;
        const auto& e1 = m1[i]["eval"].at(0)["metrics"];
        const auto& e2 = m2[i]["eval"].at(0)["metrics"];
        CHECK(e2["tokens"] == e1["tokens"]);
        CHECK(e2["samples"] == e1["samples"]);
        CHECK(e2["loss"].get<double>() == Approx(e1["loss"].get<double>()).epsilon(1e-5));
        if (e1.contains("aux_loss")) {
          CHECK(e2["aux_loss"].get<double>() ==
                Approx(e1["aux_loss"].get<double>()).epsilon(1e-4).margin(1e-9));
        }
        continue;
      }
      CHECK(m2[i]["loss"].get<double>() == Approx(m1[i]["loss"].get<double>()).epsilon(1e-5));
      CHECK(m2[i]["aux_loss"].get<double>() ==
            Approx(m1[i]["aux_loss"].get<double>()).epsilon(1e-4).margin(1e-9));
    }
    CHECK(eval_records >= 1);  // at step 2 and at the end
  }
  // Checkpoints: written once, by rank 0, with the single process's content.
  CHECK(fs::is_directory(fs::path(two_dir) / "stories-mixlora" / "checkpoint-2"));
  CHECK(worst_relative_difference(
            one_dir + "/stories-mixlora/checkpoint-2/adapter_model.safetensors",
            two_dir + "/stories-mixlora/checkpoint-2/adapter_model.safetensors") < 1e-5);
}

TEST_CASE("a rank killed mid-run ends the other with an error within the timeout",
          "[distributed][cli]") {
  TempDir ws;
  write_lines(ws / "rows.jsonl", stories_rows(64));
  const int timeout_s = 6;
  const std::vector<std::string> args = {"--config",     "configs/mixlora.json",
                                         "--base-model", stories_dir(),
                                         "--output-dir", ws / "out",
                                         "--threads",    "1",
                                         "--set",        "lora[0].data=" + (ws / "rows.jsonl"),
                                         "--set",        "log_every=1",
                                         "--set",        "lora[0].batch_size=2",
                                         "--set",        "lora[0].micro_batch_size=1",
                                         "--set",        "lora[0].num_epochs=50"};
  const int port = free_port();
  auto rank0 = start_rank(args + dist_flags(0, port, timeout_s), ws / "r0");
  auto rank1 = start_rank(args + dist_flags(1, port, timeout_s), ws / "r1");
  // Training is under way once rank 0 logged its first step.
  const bool training = wait_for_log(rank0, "| step 1/", 60);
  SECTION("kill -9") { ::kill(rank1.pid, SIGKILL); }
  SECTION("stopped (a hung peer): only the timeout can tell") { ::kill(rank1.pid, SIGSTOP); }
  const auto killed_at = std::chrono::steady_clock::now();
  wait_rank(rank0, 60);  // a generous bound: a hang fails here, not in a CI timeout
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  ::kill(rank1.pid, SIGKILL);
  wait_rank(rank1, 10);
  INFO("rank 0:\n" << rank0.err());
  REQUIRE(training);
  CHECK(rank0.exit_code == 1);
  CHECK(seconds < timeout_s + 20);
  CHECK_THAT(rank0.err(),
             Catch::Matchers::Contains("mixlora-train: error: rank 0: all_reduce failed"));
  CHECK_FALSE(fs::exists(ws / "out/mixlora/adapter_model.safetensors"));
}

TEST_CASE("a rank that fails on its data ends the other, which names the cause",
          "[distributed][cli]") {
  TempDir ws;
  write_lines(ws / "rows.jsonl", stories_rows(8));
  const std::vector<std::string> args = {"--config",     "configs/mixlora.json",
                                         "--base-model", stories_dir(),
                                         "--output-dir", ws / "out",
                                         "--threads",    "1",
                                         "--set",        "lora[0].batch_size=4",
                                         "--set",        "lora[0].micro_batch_size=2"};
  const int port = free_port();
  // Rank 1 alone sees a data file that is not there (a node without the shared file system).
  auto rank0 =
      start_rank(args + std::vector<std::string>{"--set", "lora[0].data=" + (ws / "rows.jsonl")} +
                     dist_flags(0, port, 30),
                 ws / "r0");
  auto rank1 = start_rank(
      args + std::vector<std::string>{"--set", "lora[0].data=" + (ws / "missing.jsonl")} +
          dist_flags(1, port, 30),
      ws / "r1");
  wait_rank(rank0, 90);
  wait_rank(rank1, 90);
  INFO("rank 0:\n" << rank0.err() << "\nrank 1:\n" << rank1.err());
  CHECK(rank1.exit_code == 2);
  CHECK_THAT(rank1.err(), Catch::Matchers::Contains("missing.jsonl"));
  CHECK(rank0.exit_code == 1);
  CHECK_THAT(rank0.err(), Catch::Matchers::Contains("rank 1 failed: "));
  CHECK_THAT(rank0.err(), Catch::Matchers::Contains("missing.jsonl"));
}

TEST_CASE("a rank whose peers never come gives up after --dist-timeout", "[distributed][cli]") {
  TempDir ws;
  write_lines(ws / "rows.jsonl", stories_rows(4));
  auto rank0 =
      start_rank({"--config", "configs/mixlora.json", "--base-model", stories_dir(), "--output-dir",
                  ws / "out", "--set", "lora[0].data=" + (ws / "rows.jsonl"), "--world-size", "2",
                  "--rank", "0", "--master-addr", "127.0.0.1", "--master-port",
                  std::to_string(free_port()), "--dist-timeout", "2"},
                 ws / "r0");
  wait_rank(rank0, 60);
  INFO(rank0.err());
  CHECK(rank0.exit_code == 1);
  CHECK_THAT(rank0.err(), Catch::Matchers::Contains("rank 0: "));
  CHECK_THAT(rank0.err(), Catch::Matchers::Contains("--dist-timeout"));
  CHECK_FALSE(fs::exists(ws / "out/mixlora"));
}

TEST_CASE(
    "resume on two ranks (--resume) continues a one-process checkpoint to the uninterrupted bytes",
    "[distributed][cli]") {
  TempDir ws;
  write_lines(ws / "rows.jsonl", stories_rows(12));
  // 12 rows, 2 micro-batches of 2 per step, 2 epochs: 6 steps, checkpoints at 2 and 4.
  const std::vector<std::string> args = {"--config",     "configs/mixlora.json",
                                         "--base-model", stories_dir(),
                                         "--threads",    "1",
                                         "--set",        "lora[0].data=" + (ws / "rows.jsonl"),
                                         "--set",        "lora[0].batch_size=4",
                                         "--set",        "lora[0].micro_batch_size=2",
                                         "--set",        "lora[0].num_epochs=2",
                                         "--set",        "save_step=2",
                                         "--set",        "lora[0].lr=0.01",
                                         "--set",        "lora[0].lora_dropout=0",
                                         "--set",        "log_every=1"};
  const auto a_dir = ws / "A", b_dir = ws / "B";
  auto single = start_rank(args + std::vector<std::string>{"--output-dir", a_dir}, ws / "single");
  wait_rank(single, 120);
  {
    INFO(single.err());
    REQUIRE(single.exit_code == 0);
  }
  const fs::path a(a_dir), b(b_dir);
  fs::copy(a, b, fs::copy_options::recursive);
  // Interrupted after the checkpoint at step 2.
  fs::remove(b / "mixlora/adapter_model.safetensors");
  fs::remove(b / "mixlora/adapter_config.json");
  REQUIRE(fs::remove_all(b / "mixlora/checkpoint-4") > 0);

  const int port = free_port();
  const std::vector<std::string> resume = {"--output-dir", b_dir, "--resume"};
  auto rank0 = start_rank(args + resume + dist_flags(0, port, 60), ws / "r0");
  auto rank1 = start_rank(args + resume + dist_flags(1, port, 60), ws / "r1");
  wait_rank(rank0, 120);
  wait_rank(rank1, 120);
  INFO("rank 0:\n" << rank0.err() << "\nrank 1:\n" << rank1.err());
  REQUIRE(rank0.exit_code == 0);
  REQUIRE(rank1.exit_code == 0);
  CHECK_THAT(rank0.err(), Catch::Matchers::Contains("checkpoint-2 (step 2)"));
  CHECK(slurp((b / "mixlora/adapter_model.safetensors").string()) ==
        slurp((a / "mixlora/adapter_model.safetensors").string()));
  CHECK(slurp((b / "mixlora/checkpoint-4/optimizer.safetensors").string()) ==
        slurp((a / "mixlora/checkpoint-4/optimizer.safetensors").string()));
  // metrics.jsonl: rank 0 trimmed the records after step 2 and logged steps 3-6 once.
  CHECK(read_metrics((b / "mixlora/metrics.jsonl").string()).size() ==
        read_metrics((a / "mixlora/metrics.jsonl").string()).size());
}
