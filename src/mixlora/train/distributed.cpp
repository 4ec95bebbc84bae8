#include "mixlora/train/distributed.h"

#include "mixlora/common/build_info.h"
#include "mixlora/common/error.h"

// LibTorch's CMake config defines USE_C10D_GLOO / USE_C10D_NCCL for the backends it was built
// with; build_info.h adds whether their headers (gloo/, nccl.h) are here to compile against.
#if defined(USE_C10D_GLOO) && MIXLORA_WITH_GLOO
#define MIXLORA_GLOO 1
#else
#define MIXLORA_GLOO 0
#endif
#if defined(USE_C10D_NCCL) && MIXLORA_WITH_NCCL
#define MIXLORA_NCCL 1
#else
#define MIXLORA_NCCL 0
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#if MIXLORA_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if MIXLORA_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <c10/util/Exception.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>

namespace mixlora::train {

namespace {

const std::string kFailureKey = "mixlora/failure";

std::string first_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  const std::string what = c10_error ? c10_error->what_without_backtrace() : e.what();
  return what.substr(0, what.find('\n'));
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// Tensors grouped by dtype (a bucket holds one dtype), in their original order.
std::map<at::ScalarType, std::vector<at::Tensor>> by_dtype(const std::vector<at::Tensor>& tensors) {
  std::map<at::ScalarType, std::vector<at::Tensor>> groups;
  for (const auto& t : tensors) {
    if (!t.defined()) fail_runtime("internal: a collective got an undefined tensor");
    groups[t.scalar_type()].push_back(t);
  }
  return groups;
}

// The collectives of one backend. LibTorch 1.13's ProcessGroupGloo/NCCL derive from
// ProcessGroup, 2.x's from Backend: the calls are the same, the base is not, so a template
// holds the concrete class.
struct Collectives {
  virtual ~Collectives() = default;
  virtual void all_reduce_sum(std::vector<at::Tensor>& flat) = 0;
  // Starts the sum; the returned call waits for it.
  virtual std::function<void()> start_all_reduce_sum(std::vector<at::Tensor>& flat) = 0;
  virtual void broadcast(std::vector<at::Tensor>& flat, int root) = 0;
};

template <typename Group>
struct CollectivesOf final : Collectives {
  explicit CollectivesOf(c10::intrusive_ptr<Group> g) : group(std::move(g)) {}
  void all_reduce_sum(std::vector<at::Tensor>& flat) override {
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    group->allreduce(flat, options)->wait();
  }
  std::function<void()> start_all_reduce_sum(std::vector<at::Tensor>& flat) override {
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    auto work = group->allreduce(flat, options);  // the work keeps its own handles of the tensors
    return [work] { work->wait(); };
  }
  void broadcast(std::vector<at::Tensor>& flat, int root) override {
    c10d::BroadcastOptions options;
    options.rootRank = root;
    group->broadcast(flat, options)->wait();
  }
  c10::intrusive_ptr<Group> group;
};

}  // namespace

struct Communicator::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  std::unique_ptr<Collectives> group;
  c10::Device device{c10::kCPU};  // where the flat buckets live: the CPU for Gloo, the GPU for NCCL
  int rank = 0;

  // Waits for one collective; a failure names it and, when a peer left its error in the store,
  // that error: the root cause, not only "connection closed".
  void run(const std::string& what, const std::function<void()>& collective) {
    try {
      collective();
    } catch (const std::exception& e) {
      std::string peer;
      try {
        if (store->check({kFailureKey})) {
          const auto bytes = store->get(kFailureKey);
          peer = std::string(bytes.begin(), bytes.end());
        }
      } catch (const std::exception&) {
        // The store went with the failed rank (rank 0 serves it): nothing more to learn.
      }
      fail_runtime("rank {}: {} failed: {} ({})", rank, what, first_line(e),
                   peer.empty() ? "another rank failed or was lost; see its log" : peer);
    }
  }

  // Runs `collective` on flat buckets of `tensors` and copies the results back.
  void bucketed(const std::string& what, const std::vector<at::Tensor>& tensors,
                const std::function<void(std::vector<at::Tensor>&)>& collective) {
    for (const auto& [dtype, group] : by_dtype(tensors)) {
      size_t begin = 0;
      while (begin < group.size()) {
        size_t end = begin;
        int64_t bytes = 0;
        std::vector<at::Tensor> flat_parts;
        do {
          bytes += group[end].numel() * group[end].element_size();
          flat_parts.push_back(group[end].reshape({-1}).to(device));
          ++end;
        } while (end < group.size() &&
                 bytes + group[end].numel() * group[end].element_size() <= kBucketBytes);
        std::vector<at::Tensor> flat = {at::cat(flat_parts)};
        run(what, [&] { collective(flat); });
        int64_t offset = 0;
        for (size_t i = begin; i < end; ++i) {
          const int64_t n = group[i].numel();
          group[i].copy_(flat[0].narrow(0, offset, n).view(group[i].sizes()));
          offset += n;
        }
        begin = end;
      }
    }
  }
};

Communicator::Communicator(std::unique_ptr<Impl> impl, int rank, int world_size,
                           std::string backend)
    : impl_(std::move(impl)), rank_(rank), world_size_(world_size), backend_(std::move(backend)) {}

Communicator::~Communicator() = default;

std::unique_ptr<Communicator> Communicator::connect(const RankInfo& ranks,
                                                    const CommunicatorOptions& options) {
  std::string backend = options.backend;
  if (backend == "auto") backend = options.device.is_cuda() && MIXLORA_NCCL ? "nccl" : "gloo";
  if (backend != "gloo" && backend != "nccl") {
    fail_input("--dist-backend: expected auto, gloo or nccl, got '{}'", options.backend);
  }
  if (backend == "nccl" && !MIXLORA_NCCL) {
    fail_input(
        "--dist-backend nccl: this build's LibTorch has no NCCL (build against a CUDA LibTorch, or "
        "use gloo)");
  }
  if (backend == "nccl" && !options.device.is_cuda())
    fail_input("--dist-backend nccl needs a CUDA --device");
  if (backend == "gloo" && !MIXLORA_GLOO) {
    fail_input(
        "this build has no c10d Gloo (a LibTorch without USE_C10D_GLOO, or no gloo headers: "
        "install libgloo-dev and rebuild)");
  }

  auto impl = std::make_unique<Impl>();
  impl->rank = ranks.rank;
  impl->device = backend == "nccl" ? options.device : c10::Device(c10::kCPU);
  const std::string where = fmt::format("{}:{}", ranks.master_addr, ranks.master_port);
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(ranks.master_port);
    store_options.isServer = ranks.rank == 0 && !ranks.agent_store;
    store_options.numWorkers =
        ranks.agent_store ? c10::nullopt : c10::optional<size_t>(ranks.world_size);
    store_options.waitWorkers = !ranks.agent_store;
    store_options.timeout = options.timeout;
    store_options.multiTenant = true;
    c10::intrusive_ptr<c10d::Store> store =
        c10::make_intrusive<c10d::TCPStore>(ranks.master_addr, store_options);
    // Keys of this job apart from the agent's own (torchrun) and from earlier attempts.
    impl->store = c10::make_intrusive<c10d::PrefixStore>(
        ranks.agent_store ? ranks.store_prefix : "mixlora", store);
    impl->store->setTimeout(options.timeout);
  } catch (const std::exception& e) {
    fail_runtime(
        "rank {}: rendezvous at {} failed: {} (world size {} from {}: did every rank start within "
        "--dist-timeout, is rank 0's address reachable and its port free? MASTER_ADDR/MASTER_PORT "
        "or "
        "--master-addr/--master-port set them)",
        ranks.rank, where, first_line(e), ranks.world_size, ranks.source);
  }

  try {
#if MIXLORA_NCCL
    if (backend == "nccl") {
      // Without blocking wait a collective whose peer died never returns to the CPU: make
      // wait() block and honour the timeout (unless the user chose otherwise).
      ::setenv("NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = options.timeout;
      impl->group = std::make_unique<CollectivesOf<c10d::ProcessGroupNCCL>>(
          c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, ranks.rank, ranks.world_size,
                                                      nccl_options));
    }
#endif
#if MIXLORA_GLOO
    if (backend == "gloo") {
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
      // As torch.distributed: GLOO_SOCKET_IFNAME names the interfaces; else the host's
      // address, or the loopback when the whole job runs on this machine.
      if (const char* ifnames = std::getenv("GLOO_SOCKET_IFNAME"); ifnames && *ifnames) {
        std::stringstream list(ifnames);
        for (std::string name; std::getline(list, name, ',');) {
          gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
        }
      } else if (is_loopback(ranks.master_addr)) {
        gloo_options->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      gloo_options->threads = 2;
      impl->group = std::make_unique<CollectivesOf<c10d::ProcessGroupGloo>>(
          c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, ranks.rank, ranks.world_size,
                                                      gloo_options));
    }
#endif
  } catch (const std::exception& e) {
    fail_runtime(
        "rank {}: connecting the {} process group of {} ranks through {} failed: {} (did every "
        "rank "
        "start? --dist-timeout bounds the wait)",
        ranks.rank, backend, ranks.world_size, where, first_line(e));
  }
  if (!impl->group) fail_runtime("internal: no process group for backend {}", backend);
  return std::unique_ptr<Communicator>(
      new Communicator(std::move(impl), ranks.rank, ranks.world_size, backend));
}

void Communicator::all_reduce_sum(const std::vector<at::Tensor>& tensors) {
  impl_->bucketed("all_reduce", tensors,
                  [&](std::vector<at::Tensor>& flat) { impl_->group->all_reduce_sum(flat); });
}

std::function<void()> Communicator::start_all_reduce_sum(const at::Tensor& flat) {
  if (flat.device() != impl_->device)
    fail_runtime("internal: start_all_reduce_sum got a tensor on {}", flat.device().str());
  std::function<void()> wait;
  impl_->run("all_reduce", [&] {
    std::vector<at::Tensor> one = {flat};
    wait = impl_->group->start_all_reduce_sum(one);
  });
  Impl* impl = impl_.get();
  return [impl, wait] { impl->run("all_reduce", wait); };
}

c10::Device Communicator::device() const { return impl_->device; }

void Communicator::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  impl_->bucketed("broadcast", tensors,
                  [&](std::vector<at::Tensor>& flat) { impl_->group->broadcast(flat, root); });
}

void Communicator::barrier() {
  // An all-reduce of one number: the same on both backends, and NCCL's barrier has to guess
  // the device.
  all_reduce_sum({at::zeros({1}, at::TensorOptions().device(impl_->device))});
}

void Communicator::report_failure(const std::string& message) noexcept {
  try {
    if (impl_->store->check({kFailureKey})) return;  // the first failure is the root cause
    const std::string text =
        fmt::format("rank {} failed: {}", rank_, message.substr(0, message.find('\n')));
    impl_->store->set(kFailureKey, std::vector<uint8_t>(text.begin(), text.end()));
  } catch (...) {
    // The store may be gone with rank 0: the peers will still see the lost connection.
  }
}

}  // namespace mixlora::train
