// The case list of retort_bench (see bench/bench_op_cases.h). Byte counts assume f32 and that
// every input is read once and every output written once.
#include "bench/bench_op_cases.h"
#include <cstring>
#include "engine/optim/adamw.h"
#include "engine/optim/sgd.h"
#include "kernels/cuda/cuda_api.h"

namespace retort::bench {
namespace {
double count(const Shape& s) {
  double n = 1;
  for (auto d : s) n *= double(d);
  return n;
}
constexpr double kF32 = 4;

Tensor random_on(const Shape& s, uint64_t seed, Device d) {
  Generator g(seed);
  return (rand(s, g, DType::f32, d) * 2.0 - 1.0).detach();
}

void device_or_host_copy(void* dst, const void* src, size_t bytes, bool gpu) {
  if (gpu) cuda::memcpy_any(dst, true, src, true, bytes);
  else std::memcpy(dst, src, bytes);
}

// A device-to-device (or host) copy of `bytes` bytes through the runtime: the memory ceiling.
OpCase copy_ceiling(int64_t floats) {
  OpCase c{"copy " + std::to_string(floats * 4 >> 20) + " MiB (cudaMemcpy / memcpy)", "ceiling", {}, {},
           2 * kF32 * double(floats), 0, false, false};
  c.custom = [floats](Device d) -> std::function<void()> {
    Tensor src = Tensor::ones({floats}, DType::f32, d), dst = Tensor::empty({floats}, DType::f32, d);
    const bool gpu = d.is_cuda();
    return [src, dst, gpu] { device_or_host_copy(dst.raw_data(), src.raw_data(), src.nbytes(), gpu); };
  };
  return c;
}

// A square matrix product through the GEMM library: the arithmetic ceiling.
OpCase gemm(int64_t n, DType dtype) {
  const double elem = double(dtype_size(dtype));
  OpCase c{fmt::format("matmul {0}x{0}x{0} {1} (cuBLAS / OpenBLAS)", n, dtype_name(dtype)), "ceiling", {}, {},
           3 * elem * double(n) * double(n), 2.0 * double(n) * double(n) * double(n), false, false,
           dtype == DType::bf16};
  c.custom = [n, dtype](Device d) -> std::function<void()> {
    Tensor a = random_on({n, n}, 21, d).to(dtype), b = random_on({n, n}, 22, d).to(dtype);
    return [a, b] { NoGradGuard ng; matmul(a, b); };
  };
  return c;
}

// Normal draws into a fresh tensor (the counter-based generator's kernel).
OpCase normal_draws(int64_t n) {
  OpCase c{fmt::format("randn [{}]", n), "random", {}, {}, kF32 * double(n), 0, false, false};
  c.custom = [n](Device d) -> std::function<void()> {
    auto gen = std::make_shared<Generator>(5);
    return [gen, n, d] { randn({n}, *gen, DType::f32, d); };
  };
  return c;
}

// An optimizer update over `floats` parameters whose gradients are set once.
OpCase optimizer_step(int64_t floats, bool adamw) {
  OpCase c{fmt::format("{} step over {:.1f}M parameters", adamw ? "AdamW" : "SGD momentum", double(floats) / 1e6),
           "optim", {}, {}, kF32 * double(floats) * (adamw ? 7 : 5), 0, false, false};
  c.custom = [floats, adamw](Device d) -> std::function<void()> {
    Tensor p = random_on({floats}, 11, d).requires_grad_(true);
    sum(mul(p, random_on({floats}, 12, d))).backward();
    std::vector<ParamGroup> groups(1);
    groups[0].params = {p};
    groups[0].lr = 1e-3;
    groups[0].weight_decay = 0.05;
    std::shared_ptr<Optimizer> opt;
    if (adamw) opt = std::make_shared<AdamW>(std::move(groups));
    else opt = std::make_shared<SGD>(std::move(groups), SgdOptions{0.9, false});
    return [opt, p] { opt->step(); };
  };
  return c;
}
}  // namespace

std::vector<OpCase> make_op_cases(bool small) {
  // s(full, tiny): the full size, or the tiny one in smoke runs
  auto s = [small](int64_t full, int64_t tiny) { return small ? tiny : full; };
  const int64_t B = s(256, 2), R = s(16384, 8), V = s(1000, 10), E = s(384, 8), Npix = s(32, 4);
  const int64_t elems = s(int64_t(1) << 26, 4096);
  std::vector<OpCase> cases;
  cases.push_back(copy_ceiling(s(int64_t(1) << 28, 1 << 12)));
  cases.push_back(gemm(s(8192, 16), DType::f32));
  cases.push_back(gemm(s(8192, 16), DType::bf16));

  const Shape act{B, 128, Npix, Npix};  // a resnet32x4 stage-3 activation at batch 256
  const double nact = count(act);
  cases.push_back({fmt::format("add {} + [128, 1, 1] (broadcast)", shape_str(act)), "elementwise_binary",
                   {act, {128, 1, 1}}, [](const auto& in) { return add(in[0], in[1]); }, kF32 * 2 * nact, 0});
  cases.push_back({fmt::format("mul {} * {}", shape_str(act), shape_str(act)), "elementwise_binary", {act, act},
                   [](const auto& in) { return mul(in[0], in[1]); }, kF32 * 3 * nact, 0});
  cases.push_back({fmt::format("relu {}", shape_str(act)), "unary", {act},
                   [](const auto& in) { return relu(in[0]); }, kF32 * 2 * nact, 0});
  cases.push_back({fmt::format("gelu [{}]", elems), "unary", {{elems}},
                   [](const auto& in) { return gelu(in[0]); }, kF32 * 2 * double(elems), 0});
  const Shape tok{B, 65, E};  // ViT-S/4 tokens at batch 256
  cases.push_back({fmt::format("transpose copy {} -> [.., {}, 65]", shape_str(tok), E), "copy", {tok},
                   [](const auto& in) { return in[0].transpose(1, 2).contiguous(); }, kF32 * 2 * count(tok), 0});
  cases.push_back({fmt::format("sum rows [{},{}] dim 1", R, V), "reduce_rows", {{R, V}},
                   [](const auto& in) { return sum(in[0], {1}); }, kF32 * double(R) * double(V + 1), 0});
  cases.push_back({fmt::format("mean over leading dims {} (bias grad)", shape_str(tok)), "reduce_rows", {tok},
                   [](const auto& in) { return mean(in[0], {0, 1}); }, kF32 * count(tok), 0});
  cases.push_back({fmt::format("argmax [{},{}] dim 1", R, V), "reduce_arg", {{R, V}},
                   [](const auto& in) { return argmax(in[0], 1); }, kF32 * double(R) * double(V) + 8.0 * double(R), 0,
                   false});
  cases.push_back({fmt::format("softmax [{},{}]", R, V), "softmax", {{R, V}},
                   [](const auto& in) { return softmax(in[0], 1); }, kF32 * 2 * double(R) * double(V), 0});
  cases.push_back({fmt::format("layer_norm {}", shape_str(tok)), "norm", {tok, {E}, {E}},
                   [](const auto& in) { return layer_norm(in[0], in[1], in[2], 1e-6); }, kF32 * 2 * count(tok), 0});
  cases.push_back({fmt::format("batch_norm2d train {}", shape_str(act)), "norm", {act, {128}, {128}},
                   [](const auto& in) {
                     Tensor rm = Tensor::zeros({128}, DType::f32, in[0].device());
                     Tensor rv = Tensor::ones({128}, DType::f32, in[0].device());
                     return batch_norm2d(in[0], in[1], in[2], rm, rv, true);
                   },
                   kF32 * 2 * nact, 0});
  cases.push_back({fmt::format("max_pool2d 2x2 s2 {}", shape_str(act)), "pool", {act},
                   [](const auto& in) { return max_pool2d(in[0], {2, 2}, {2, 2}); }, kF32 * 1.25 * nact, 0});
  cases.push_back({fmt::format("avg_pool2d 2x2 s2 {}", shape_str(act)), "pool", {act},
                   [](const auto& in) { return avg_pool2d(in[0], {2, 2}, {2, 2}); }, kF32 * 1.25 * nact, 0});
  {
    Generator g(3);
    std::vector<int64_t> labels(static_cast<size_t>(R));
    for (auto& l : labels) l = g.randint(V);
    Tensor y = Tensor::from_i64(labels, {R});
    cases.push_back({fmt::format("cross_entropy [{},{}]", R, V), "loss", {{R, V}},
                     [y](const auto& in) { return cross_entropy(in[0], y.to(in[0].device())); },
                     kF32 * double(R) * double(V) + 8.0 * double(R), 0});
    std::vector<int64_t> rows(static_cast<size_t>(R));
    for (auto& r : rows) r = g.randint(R);
    Tensor idx = Tensor::from_i64(rows, {R});
    cases.push_back({fmt::format("index_select {} rows of [{},{}]", R, R, E), "select", {{R, E}},
                     [idx](const auto& in) { return index_select(in[0], 0, idx.to(in[0].device())); },
                     kF32 * 2 * double(R) * double(E) + 8.0 * double(R), 0});
  }
  const Shape qkv{B, 6, 65, 64};  // ViT-S/4 attention at batch 256
  cases.push_back({fmt::format("sdpa (flash) {}", shape_str(qkv)), "attention_flash", {qkv, qkv, qkv},
                   [](const auto& in) { return scaled_dot_product_attention(in[0], in[1], in[2]); },
                   kF32 * 4 * count(qkv), 4.0 * count(qkv) * 65});
  cases.push_back({fmt::format("l2_normalize [{},{}] dim 1", R, E), "geometry", {{R, E}},
                   [](const auto& in) { return l2_normalize(in[0], 1); }, kF32 * 2 * double(R) * double(E), 0});
  const int64_t P = s(4096, 16);
  cases.push_back({fmt::format("pairwise_sq_dist [{0},{1}] x [{0},{1}]", P, E), "geometry", {{P, E}, {P, E}},
                   [](const auto& in) { return pairwise_sq_dist(in[0], in[1]); },
                   kF32 * (2.0 * double(P) * double(E) + double(P) * double(P)), 2.0 * double(P) * double(P) * double(E)});
  cases.push_back(normal_draws(elems));
  cases.push_back(optimizer_step(s(21376996, 1000), true));
  cases.push_back(optimizer_step(s(21376996, 1000), false));
  // Library-backed ops the step spends its time in (cuDNN convolution, cuBLAS linear).
  const Shape conv_in{B, 128, Npix, Npix};
  cases.push_back({fmt::format("conv2d 3x3 {} -> 128 (cuDNN / im2col+GEMM)", shape_str(conv_in)), "conv",
                   {conv_in, {128, 128, 3, 3}},
                   [](const auto& in) { return conv2d(in[0], in[1], Tensor(), {{1, 1}, {1, 1}}); },
                   kF32 * 2 * count(conv_in), 2.0 * count(conv_in) * 128 * 9});
  cases.push_back({fmt::format("linear [{},{}] x [{},{}]^T + b (cuBLAS)", B * 65, E, 4 * E, E), "gemm",
                   {{B * 65, E}, {4 * E, E}, {4 * E}},
                   [](const auto& in) { return linear(in[0], in[1], in[2]); },
                   kF32 * (double(B * 65) * double(E) * 5 + double(4 * E) * double(E)),
                   2.0 * double(B * 65) * double(E) * double(4 * E)});
  return cases;
}

}  // namespace retort::bench
