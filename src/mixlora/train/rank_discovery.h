// Where this process sits in a data-parallel job (SPEC section 10): its rank, the world size,
// its GPU on the node and the rendezvous address. Read from flags, else from the variables
// torchrun sets, else from Slurm's; one process with none of them is a world of one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace mixlora::train {

struct RankInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // index of the process on its node: the CUDA device it uses
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string source =
      "single process";  // "torchrun", "slurm", "flags": says where the ranks came from
  // torchrun's static rendezvous already serves a TCPStore at the master address (its agent's):
  // then every rank is a client and keys live under this prefix, as torch.distributed does.
  bool agent_store = false;
  std::string store_prefix;
};

// The command-line flags (--rank, --world-size, --local-rank, --master-addr, --master-port);
// each one that is set overrides the environment.
struct RankFlags {
  std::optional<int> rank, world_size, local_rank, master_port;
  std::optional<std::string> master_addr;
};

// Reads variables through `getenv` (std::getenv by default; tests pass a map). Throws InputError
// naming the variable or flag when a value is malformed or out of range.
using EnvLookup = std::function<const char*(const char*)>;
RankInfo discover_ranks(const RankFlags& flags, const EnvLookup& getenv = nullptr);

// The first host of a Slurm node list: "node[01-04,07],login" -> "node01", "gpu-a,gpu-b" ->
// "gpu-a".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace mixlora::train
