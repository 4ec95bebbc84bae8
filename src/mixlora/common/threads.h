// CPU thread pools: LibTorch's intra-op pool (OpenMP) and the BLAS library's own.
//
// Debian's LibTorch multiplies through whatever libblas.so.3 the system selects. OpenBLAS's
// OpenMP build shares LibTorch's OpenMP pool; its pthreads build keeps a second pool whose
// workers spin for a while after each matmul, as LibTorch's OpenMP workers do after each
// element-wise op. With both pools on every core they take turns stealing the cores from each
// other: measured on 2 cores, a training step ran 2.0-2.7x slower than with either pool alone
// (docs/benchmarks.md). So with the pthreads build LibTorch's own ops run on one thread and
// OpenBLAS gets the cores; with the OpenMP build both use the same threads.
#pragma once

#include <string>

namespace mixlora::common {

struct ThreadSetup {
  int torch_threads = 1;  // LibTorch intra-op (OpenMP) threads
  int blas_threads = 1;   // threads of the BLAS library (OpenBLAS), the same pool under OpenMP
  std::string blas;       // "openblas-openmp", "openblas-pthreads", "openblas-serial" or "other"
};

// Applies `requested` threads to both pools as described above; 0 = OMP_NUM_THREADS if set,
// else every core the process may run on.
ThreadSetup configure_threads(int requested);

// The setup configure_threads last applied (before any call: LibTorch's default, BLAS unknown).
const ThreadSetup& thread_setup();

// E.g. "2 threads (openblas-openmp)" or "1 LibTorch + 2 BLAS threads (openblas-pthreads)".
std::string describe(const ThreadSetup& setup);

}  // namespace mixlora::common
