// Which malloc this process really runs on. The build links jemalloc (CMake MIXLORA_ALLOCATOR),
// but LD_PRELOAD can put another in front, so reports ask the running process.
#pragma once

#include <string>

namespace mixlora::common {

// "jemalloc", "mimalloc", "tcmalloc" or "glibc": the first whose entry point the dynamic linker
// resolves in this process.
std::string active_malloc();

}  // namespace mixlora::common
