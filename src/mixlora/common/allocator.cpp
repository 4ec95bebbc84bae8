#include "mixlora/common/allocator.h"

#include <dlfcn.h>

namespace mixlora::common {

std::string active_malloc() {
  // Each library's own control entry point; glibc has none of them.
  if (dlsym(RTLD_DEFAULT, "mallctl") != nullptr) return "jemalloc";
  if (dlsym(RTLD_DEFAULT, "mi_version") != nullptr) return "mimalloc";
  if (dlsym(RTLD_DEFAULT, "tc_malloc") != nullptr) return "tcmalloc";
  return "glibc";
}

}  // namespace mixlora::common
