// The process's malloc. glibc, by default, serves every block above its mmap threshold (which
// adapts between 128 KiB and 32 MiB) with a fresh mmap and unmaps it on free, and trims the heap
// top back to the kernel: a training step's large activations are then mapped and zero-filled
// again every step, tens of thousands of page faults per step (docs/benchmarks.md measures it).
// tune_malloc() keeps them in the heap, the way a caching allocator would.
#pragma once

#include <string>

namespace mixlora::common {

// Raises glibc's mmap threshold to its maximum (32 MiB), keeps freed memory at the heap top
// instead of trimming it, grows the heap in 256 MiB steps and uses one arena for all threads. Does
// nothing when the environment says otherwise: MIXLORA_MALLOC_TUNING=0 (for A/B measurements),
// GLIBC_TUNABLES naming glibc.malloc settings (the user's own), or a malloc other than glibc's in
// front (LD_PRELOAD). Returns whether it tuned.
bool tune_malloc();

// "jemalloc", "mimalloc", "tcmalloc" or "glibc": the first whose entry point the dynamic linker
// resolves in this process; "glibc" gets " (tuned)" when tune_malloc() tuned it.
std::string active_malloc();

}  // namespace mixlora::common
