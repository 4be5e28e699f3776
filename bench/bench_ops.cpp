// Kernel benchmark: times forward and forward+backward of the ops that dominate training
// (GEMM, convolution, normalisation, attention, softmax, strided elementwise ops) on the CPU and, where
// a GPU is usable, on CUDA, after checking the CUDA result against the CPU reference.
// Prints a Markdown table (median of --repeats runs). Not part of the test suite.
//   build/retort_bench [--repeats 20] [--only conv]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>
#include "engine/retort.h"
#include "kernels/cuda/cuda_api.h"

using namespace retort;

namespace {

struct Case {
  std::string name;
  std::vector<Shape> shapes;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
};

Tensor random_input(const Shape& s, uint64_t seed, Device d) {
  Generator g(seed);
  return rand(s, g, DType::f32, d) * 2.0 - 1.0;
}

double median_ms(const std::function<void()>& body, int repeats, bool gpu) {
  body();  // warm-up (cuDNN algorithm search, pool growth)
  if (gpu) cuda::synchronize();
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    body();
    if (gpu) cuda::synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double max_rel_err(const Tensor& a, const Tensor& b) {
  auto va = a.to_vector(), vb = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(va[i] - vb[i]) / (1.0 + std::abs(vb[i])));
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 20;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: retort_bench [--repeats N] [--only SUBSTRING]\n");
      return 2;
    }
  }
  Generator wg(99);
  std::vector<Case> cases = {
      {"matmul 512x512x512", {{512, 512}, {512, 512}}, [](const auto& in) { return matmul(in[0], in[1]); }},
      {"linear [4096,384]x[1536,384]^T+b", {{4096, 384}, {1536, 384}, {1536}},
       [](const auto& in) { return linear(in[0], in[1], in[2]); }},
      {"conv2d 3x3 [64,16,28,28] -> 16", {{64, 16, 28, 28}, {16, 16, 3, 3}},
       [](const auto& in) { return conv2d(in[0], in[1], Tensor(), {{1, 1}, {1, 1}}); }},
      {"conv2d 3x3 s2 [64,32,14,14] -> 64", {{64, 32, 14, 14}, {64, 32, 3, 3}},
       [](const auto& in) { return conv2d(in[0], in[1], Tensor(), {{2, 2}, {1, 1}}); }},
      {"batch_norm2d train [64,32,28,28]", {{64, 32, 28, 28}, {32}, {32}},
       [](const auto& in) {
         Tensor rm = Tensor::zeros({32}, DType::f32, in[0].device()), rv = Tensor::ones({32}, DType::f32, in[0].device());
         return batch_norm2d(in[0], in[1], in[2], rm, rv, true);
       }},
      {"layer_norm [4096,384]", {{4096, 384}, {384}, {384}},
       [](const auto& in) { return layer_norm(in[0], in[1], in[2], 1e-6); }},
      {"sdpa [16,6,65,64]", {{16, 6, 65, 64}, {16, 6, 65, 64}, {16, 6, 65, 64}},
       [](const auto& in) { return scaled_dot_product_attention(in[0], in[1], in[2]); }},
      {"softmax [4096,1000]", {{4096, 1000}}, [](const auto& in) { return softmax(in[0], 1); }},
      {"relu [64,64,28,28]", {{64, 64, 28, 28}}, [](const auto& in) { return relu(in[0]); }},
      // Strided elementwise paths (kernels/cpu/strided_walk.h): a per-channel broadcast, and the
      // copy that makes a ViT's token grid [B, hw, C] a channel-first map [B, C, hw].
      {"add broadcast [64,192,28,28]+[192,1,1]", {{64, 192, 28, 28}, {192, 1, 1}},
       [](const auto& in) { return add(in[0], in[1]); }},
      {"transpose copy [128,784,192]->[128,192,784]", {{128, 784, 192}},
       [](const auto& in) { return in[0].transpose(1, 2).contiguous(); }},
  };
  std::vector<Device> devices{Device::cpu()};
  if (cuda_available()) devices.push_back(Device::cuda(0));
  else std::fprintf(stderr, "[bench] no usable GPU (%s): CPU only\n", cuda_unavailable_reason().c_str());

  std::printf("| op | device | forward ms | forward+backward ms | max rel. err vs CPU |\n|---|---|---|---|---|\n");
  for (const auto& c : cases) {
    if (!only.empty() && c.name.find(only) == std::string::npos) continue;
    Tensor cpu_out;
    for (Device d : devices) {
      std::vector<Tensor> in;
      for (size_t k = 0; k < c.shapes.size(); ++k) in.push_back(random_input(c.shapes[k], 1000 + k, d).detach());
      double err = 0;
      {
        NoGradGuard ng;
        Tensor out = c.fn(in);
        if (d.is_cpu()) cpu_out = out;
        else err = max_rel_err(out, cpu_out);
      }
      const bool gpu = d.is_cuda();
      double fwd = median_ms([&] { NoGradGuard ng; c.fn(in); }, repeats, gpu);
      for (auto& t : in) t.requires_grad_(true);
      Tensor w = random_input(cpu_out.shape(), 7, d).detach();
      double both = median_ms([&] {
        for (auto& t : in) t.zero_grad();
        sum(mul(c.fn(in), w)).backward();
      }, repeats, gpu);
      std::printf("| %s | %s | %.3f | %.3f | %s |\n", c.name.c_str(), d.str().c_str(), fwd, both,
                  gpu ? fmt::format("{:.2e}", err).c_str() : "(reference)");
      std::fflush(stdout);
    }
  }
  return 0;
}
