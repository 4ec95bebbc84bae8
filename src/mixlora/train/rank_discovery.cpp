#include "mixlora/train/rank_discovery.h"

#include "mixlora/common/error.h"

#include <cctype>
#include <climits>
#include <cstdlib>

namespace mixlora::train {

namespace {

int parse_int(const std::string& text, const std::string& what) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || value < INT_MIN || value > INT_MAX) {
    fail_input("{}: expected an integer, got '{}'", what, text);
  }
  return static_cast<int>(value);
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\n");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\n") - begin + 1);
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at the first comma outside brackets: "node[01-04,07],login".
  std::string first;
  int depth = 0;
  for (char c : nodelist) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) break;
    first += c;
  }
  // Each bracket group stands for its first member, zero padding kept: "[01-04,07]" -> "01".
  std::string host;
  for (size_t i = 0; i < first.size(); ++i) {
    if (first[i] != '[') {
      host += first[i];
      continue;
    }
    const auto close = first.find(']', i);
    if (close == std::string::npos)
      fail_input("Slurm node list '{}': a '[' without its ']'", nodelist);
    const auto group = first.substr(i + 1, close - i - 1);
    host += group.substr(0, group.find_first_of("-,"));
    i = close;
  }
  host = trim(host);
  if (host.empty())
    fail_input("Slurm node list '{}': no host name in it (set MASTER_ADDR or --master-addr)",
               nodelist);
  return host;
}

RankInfo discover_ranks(const RankFlags& flags, const EnvLookup& lookup) {
  const EnvLookup getenv =
      lookup ? lookup : EnvLookup([](const char* name) { return std::getenv(name); });
  auto var = [&](const char* name) -> std::optional<std::string> {
    const char* value = getenv(name);
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
  };
  auto read_int = [&](const char* name, int& target) {
    if (const auto v = var(name)) target = parse_int(*v, name);
  };

  RankInfo info;
  if (var("RANK") || var("WORLD_SIZE")) {  // torchrun, torch.distributed.launch, or set by hand
    if (!var("RANK") || !var("WORLD_SIZE")) {
      fail_input("{} is set but {} is not: set both (or neither, for a single process)",
                 var("RANK") ? "RANK" : "WORLD_SIZE", var("RANK") ? "WORLD_SIZE" : "RANK");
    }
    info.source = "torchrun";
    read_int("RANK", info.rank);
    read_int("WORLD_SIZE", info.world_size);
    read_int("LOCAL_RANK", info.local_rank);
    if (const auto v = var("MASTER_ADDR")) info.master_addr = *v;
    read_int("MASTER_PORT", info.master_port);
    if (var("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True") {
      info.agent_store = true;
      info.store_prefix = "/worker/attempt_" + var("TORCHELASTIC_RESTART_COUNT").value_or("0");
    }
  } else if (var("SLURM_PROCID") && var("SLURM_NTASKS")) {  // one task of srun
    info.source = "slurm";
    read_int("SLURM_PROCID", info.rank);
    read_int("SLURM_NTASKS", info.world_size);
    read_int("SLURM_LOCALID", info.local_rank);
    if (const auto v = var("MASTER_ADDR")) {
      info.master_addr = *v;
    } else if (const auto nodes =
                   var("SLURM_JOB_NODELIST") ? var("SLURM_JOB_NODELIST") : var("SLURM_NODELIST")) {
      info.master_addr = first_slurm_host(*nodes);
    }
    read_int("MASTER_PORT", info.master_port);
  }

  const bool any_flag =
      flags.rank || flags.world_size || flags.local_rank || flags.master_port || flags.master_addr;
  if (any_flag) info.source = info.source == "single process" ? "flags" : info.source + " + flags";
  if (flags.rank) info.rank = *flags.rank;
  if (flags.world_size) info.world_size = *flags.world_size;
  if (flags.local_rank) info.local_rank = *flags.local_rank;
  if (flags.master_addr) info.master_addr = *flags.master_addr;
  if (flags.master_port) info.master_port = *flags.master_port;

  if (info.world_size < 1)
    fail_input("world size must be >= 1, got {} (from {})", info.world_size, info.source);
  if (info.rank < 0 || info.rank >= info.world_size) {
    fail_input("rank {} is outside [0, {}) (world size {}, from {})", info.rank, info.world_size,
               info.world_size, info.source);
  }
  if (info.local_rank < 0)
    fail_input("local rank must be >= 0, got {} (from {})", info.local_rank, info.source);
  if (info.master_port < 1 || info.master_port > 65535) {
    fail_input("master port must be in [1, 65535], got {} (from {})", info.master_port,
               info.source);
  }
  if (info.master_addr.empty())
    fail_input("the master address is empty (set MASTER_ADDR or --master-addr)");
  return info;
}

}  // namespace mixlora::train
