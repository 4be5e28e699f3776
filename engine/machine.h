// What computes a run's numbers: for the CPU the processor, the OpenMP thread count and the
// OpenBLAS kernel set; for a GPU its name, compute capability and CUDA runtime. The same code
// and inputs give the same digits only when these agree: OpenBLAS picks its GEMM kernels for
// the CPU it finds (AVX-512 ones on an Intel Xeon, AVX2 ones on an AMD EPYC), and the kernel
// sets sum in different orders (docs/results.md, "Two machines"). OPENBLAS_CORETYPE=Zen on an
// AVX2 x86-64 machine selects the EPYC's kernels.
#pragma once
#include <string>
#include "engine/device.h"

namespace retort {

struct MachineDescription {
  std::string device;     // "cpu", "cuda:0"
  std::string processor;  // CPU model name, or the GPU's description
  int threads = 0;        // OpenMP threads (CPU); 0 on a GPU
  std::string library;    // OpenBLAS build and kernel set (CPU); empty on a GPU (in processor)

  // What decides the bits (keys the stage cache): the thread count and kernel set on the CPU
  // (the processor's name does not matter once they agree), the GPU's description on a GPU.
  std::string numerics_key() const;
  // One line for logs: "cpu: Intel(R) Xeon(R) Processor, 2 threads, OpenBLAS 0.3.21 ... SkylakeX ...".
  std::string line() const;
};

MachineDescription describe_machine(Device device);

// A digest of the outputs of a fixed, seeded set of the engine's convolutions and matrix
// products on `device` (shapes of the built-in ResNets and ViTs). Two machines with equal digests
// compute those ops to the same bits; with different digests the same recipe computes other bits
// (for the ResNets, other accuracies; docs/results.md). `retort machine` prints it.
std::string numerics_digest(Device device);

}  // namespace retort
