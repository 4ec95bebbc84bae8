// Built into mixlora-tests-tsan only (scripts/tsan.sh): a deliberate data race. The script runs
// it first and requires a ThreadSanitizer report from it, so a build that is not instrumented, or
// a report that goes nowhere, fails instead of passing the data-parallel tests unexamined.
#include "catch.h"

#include <thread>

TEST_CASE("tsan canary: two threads write one int without a lock", "[.tsan-canary]") {
  int shared = 0;
  auto bump = [&shared] {
    for (int i = 0; i < 1000; ++i) shared = shared + 1;
  };
  std::thread a(bump), b(bump);
  a.join();
  b.join();
  CHECK(shared > 0);
}
