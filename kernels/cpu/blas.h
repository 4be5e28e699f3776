// The CPU's BLAS (OpenBLAS) itself: its threading set-up and what it is.
#pragma once
#include <string>

namespace retort::cpu {
// Puts OpenBLAS in single-threaded mode (once per process): the engine threads with OpenMP,
// and OpenBLAS's own spinning workers would otherwise compete with the OpenMP team.
void blas_init();
// OpenBLAS's build and the kernel set it chose for this CPU, e.g. "OpenBLAS 0.3.21 NO_LAPACKE
// DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64". Kernel sets sum in different orders, so
// the same program gives different digits under different ones (OPENBLAS_CORETYPE picks one).
std::string blas_config();
}  // namespace retort::cpu
