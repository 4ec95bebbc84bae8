#include "mixlora/common/allocator.h"

#include <dlfcn.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace mixlora::common {

namespace {

bool tuned = false;

// Each library's own control entry point; glibc has none of them.
const char* preloaded_malloc() {
  if (dlsym(RTLD_DEFAULT, "mallctl") != nullptr) return "jemalloc";
  if (dlsym(RTLD_DEFAULT, "mi_version") != nullptr) return "mimalloc";
  if (dlsym(RTLD_DEFAULT, "tc_malloc") != nullptr) return "tcmalloc";
  return nullptr;
}

}  // namespace

bool tune_malloc() {
  const char* off = std::getenv("MIXLORA_MALLOC_TUNING");
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if ((off != nullptr && std::strcmp(off, "0") == 0) ||
      (tunables != nullptr && std::strstr(tunables, "glibc.malloc.")) ||
      preloaded_malloc() != nullptr) {
    return false;
  }
  constexpr int kMiB = 1 << 20;
  // 32 MiB is the largest threshold glibc accepts (HEAP_MAX_SIZE / 2 on 64-bit); setting it
  // also stops the threshold from adapting. Larger blocks are still mmap'ed.
  // One arena: a block freed by a worker thread (OpenMP, autograd) otherwise empties that thread's
  // arena heap, which glibc then unmaps whatever the trim threshold: measured 3.5x the page
  // faults per step (docs/benchmarks.md). Most allocations come from the main thread anyway.
  tuned = mallopt(M_MMAP_THRESHOLD, 32 * kMiB) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 &&
          mallopt(M_TOP_PAD, 256 * kMiB) == 1 && mallopt(M_ARENA_MAX, 1) == 1;
  return tuned;
}

std::string active_malloc() {
  if (const char* other = preloaded_malloc()) return other;
  return tuned ? "glibc (tuned)" : "glibc";
}

}  // namespace mixlora::common
