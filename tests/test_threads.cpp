// The CPU thread setup shared by every tool (common/threads.h): --threads reaches both
// LibTorch's pool and OpenBLAS's, the default follows OMP_NUM_THREADS, and OpenBLAS's pthreads
// build never runs beside a multi-threaded LibTorch pool.
#include "mixlora/common/threads.h"

#include "catch.h"
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <dlfcn.h>
#include <string>

using mixlora::common::configure_threads;

namespace {

// What OpenBLAS itself reports (-1: this LibTorch does not multiply through OpenBLAS).
int openblas_threads() {
  auto get = reinterpret_cast<int (*)()>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get ? get() : -1;
}

// Restores OMP_NUM_THREADS and the test process's one-thread setup (CTest sets it to 1).
struct RestoreThreads {
  std::string saved;
  bool had = false;
  RestoreThreads() {
    if (const char* v = std::getenv("OMP_NUM_THREADS")) saved = v, had = true;
  }
  ~RestoreThreads() {
    if (had)
      ::setenv("OMP_NUM_THREADS", saved.c_str(), 1);
    else
      ::unsetenv("OMP_NUM_THREADS");
    configure_threads(0);
  }
};

}  // namespace

TEST_CASE("thread setup: --threads sets LibTorch's and OpenBLAS's pools together", "[threads]") {
  RestoreThreads restore;
  const auto one = configure_threads(1);
  CHECK(one.torch_threads == 1);
  CHECK(one.blas_threads == 1);
  CHECK(at::get_num_threads() == 1);
  if (one.blas != "other" && one.blas != "openblas-openmp") CHECK(openblas_threads() == 1);

  const auto two = configure_threads(2);
  if (two.blas == "openblas-pthreads") {
    // Two spinning pools on the same cores: LibTorch's own ops go single-threaded.
    CHECK(two.torch_threads == 1);
    CHECK(two.blas_threads == 2);
    CHECK(openblas_threads() == 2);
  } else {
    CHECK(two.torch_threads == 2);
    CHECK(two.blas_threads == (two.blas == "openblas-serial" ? 1 : 2));
  }
  CHECK(at::get_num_threads() == two.torch_threads);
  CHECK(mixlora::common::thread_setup().torch_threads == two.torch_threads);

  ::setenv("OMP_NUM_THREADS", "3", 1);
  const auto from_env = configure_threads(0);
  CHECK(std::max(from_env.torch_threads, from_env.blas_threads) == 3);
  CHECK(mixlora::common::describe(one) == "1 thread (" + one.blas + ")");
}
