#include "mixlora/common/threads.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dlfcn.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace mixlora::common {

namespace {

// OpenBLAS's C API, looked up at run time: LibTorch may be linked to another BLAS (or to MKL),
// and mixlora must not require OpenBLAS to link.
struct OpenBlas {
  int (*get_parallel)() = nullptr;  // 0 sequential, 1 pthreads, 2 OpenMP
  void (*set_num_threads)(int) = nullptr;

  static OpenBlas find() {
    OpenBlas api;
    api.get_parallel = reinterpret_cast<int (*)()>(::dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
    api.set_num_threads =
        reinterpret_cast<void (*)(int)>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    return api;
  }
  bool found() const { return get_parallel && set_num_threads; }
};

// OMP_NUM_THREADS when set (torchrun sets 1 per rank), else the cores this process may run on.
// Not at::get_num_threads(): LibTorch 1.13 defaults to the physical cores cpuinfo reports, which
// on some virtual machines is 1 of 2 (measured here).
int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int n = std::atoi(env);  // "4" or the first level of "4,2"
    if (n > 0) return n;
  }
  cpu_set_t cpus;
  if (::sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) > 0)
    return CPU_COUNT(&cpus);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

ThreadSetup& current() {
  static ThreadSetup setup{at::get_num_threads(), at::get_num_threads(), "unknown"};
  return setup;
}

}  // namespace

ThreadSetup configure_threads(int requested) {
  const int threads = requested > 0 ? requested : default_threads();
  ThreadSetup setup;
  const auto openblas = OpenBlas::find();
  const int kind = openblas.found() ? openblas.get_parallel() : -1;
  setup.blas = kind == 2   ? "openblas-openmp"
               : kind == 1 ? "openblas-pthreads"
               : kind == 0 ? "openblas-serial"
                           : "other";
  if (kind == 1 && threads > 1) {
    // Two pools spinning on the same cores: give the cores to the matmuls (most of a step).
    setup.torch_threads = 1;
    setup.blas_threads = threads;
    spdlog::debug(
        "OpenBLAS is its pthreads build: LibTorch ops on 1 thread, matmuls on {} (install "
        "libopenblas0-openmp and select it with update-alternatives to share {} threads)",
        threads, threads);
  } else {
    setup.torch_threads = threads;
    setup.blas_threads = kind == 0 ? 1 : threads;
  }
  at::set_num_threads(setup.torch_threads);
  if (openblas.found() && kind != 2)
    openblas.set_num_threads(setup.blas_threads);  // OpenMP: follows at::
  current() = setup;
  return setup;
}

const ThreadSetup& thread_setup() { return current(); }

std::string describe(const ThreadSetup& setup) {
  if (setup.torch_threads == setup.blas_threads) {
    return fmt::format("{} thread{} ({})", setup.torch_threads, setup.torch_threads == 1 ? "" : "s",
                       setup.blas);
  }
  return fmt::format("{} LibTorch + {} BLAS threads ({})", setup.torch_threads, setup.blas_threads,
                     setup.blas);
}

}  // namespace mixlora::common
