// describe_machine(): the processor from /proc/cpuinfo, OpenMP's thread count, OpenBLAS's
// configuration string, or the CUDA device's description; numerics_digest(): a hash of a few
// seeded convolutions and matrix products.
#include "engine/machine.h"
#include "engine/error.h"
#include <omp.h>
#include <fstream>
#include <fmt/format.h>
#include "engine/content_hash.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "kernels/cpu/blas.h"
#include "kernels/matmul.h"
#include "kernels/cuda/cuda_api.h"

namespace retort {
namespace {

// The first "model name" line of /proc/cpuinfo (x86), else "unknown CPU"; read once per process.
const std::string& cpu_model_name() {
  static const std::string name = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("model name", 0) != 0) continue;
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      const auto start = line.find_first_not_of(" \t", colon + 1);
      return start == std::string::npos ? std::string("unknown CPU") : line.substr(start);
    }
    return std::string("unknown CPU");
  }();
  return name;
}

}  // namespace

std::string MachineDescription::numerics_key() const {
  return device == "cpu" ? fmt::format("cpu threads {} blas {}", threads, library) : "gpu " + processor;
}

std::string MachineDescription::line() const {
  if (device == "cpu") return fmt::format("cpu: {}, {} threads, {}", processor, threads, library);
  return fmt::format("{}: {}", device, processor);
}

MachineDescription describe_machine(Device device) {
  MachineDescription m;
  m.device = device.str();
  if (device.is_cpu()) {
    m.processor = cpu_model_name();
    m.threads = omp_get_max_threads();
    m.library = cpu::blas_config();
  } else {
    m.processor = cuda::device_description(device.index);
  }
  return m;
}

std::string numerics_digest(Device device) {
  Generator gen(20261123);
  auto random = [&](const Shape& shape) { return randn(shape, gen).to(device); };
  Conv2dOptions same, down;
  same.padding = {1, 1};
  down.stride = {2, 2};
  down.padding = {1, 1};
  const Tensor stem = relu(conv2d(random({8, 1, 28, 28}), random({16, 1, 3, 3}), Tensor(), same));  // a ResNet stem
  const Tensor stage = conv2d(stem, random({32, 16, 3, 3}), random({32}), down);                      // a strided block
  const Tensor qkv = matmul(random({8, 16, 64}), random({64, 192}));                                 // ViT tokens
  const Tensor logits = linear(random({128, 64}), random({10, 64}), random({10}));                    // a classifier
  ContentHash hash;
  for (const Tensor& t : {stage, qkv, logits}) {
    const Tensor host = t.to(Device::cpu()).contiguous();
    hash.bytes(host.raw_data(), host.nbytes());
  }
  return hash.hex();
}

}  // namespace retort
