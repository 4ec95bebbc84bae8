#define CATCH_CONFIG_RUNNER
#include "catch.h"

#include "mixlora/common/threads.h"

int main(int argc, char* argv[]) {
  // The tools' own thread setup (CTest sets OMP_NUM_THREADS=1: one thread per test process,
  // which also keeps OpenBLAS's results of a row independent of the rows around it).
  mixlora::common::configure_threads(0);
  return Catch::Session().run(argc, argv);
}
