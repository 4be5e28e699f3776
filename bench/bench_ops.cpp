// Kernel benchmark: times the forward (and forward + backward) of one case per hand-written
// kernel family (bench/bench_op_cases.h) on the CPU and, where a GPU is usable, on CUDA, after
// checking the device's output against the CPU reference. Each time becomes achieved GB/s
// (fewest bytes the op must move) or TFLOP/s, held against two ceilings measured in the same
// run: a device copy and a GEMM through the library. Prints a Markdown table; --json writes
// the records. Not part of the test suite.
//   build/retort_bench [--device cpu|cuda|all] [--repeats 7] [--only SUBSTRING] [--small]
//                      [--no-check] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>
#include "bench/bench_op_cases.h"
#include "kernels/cuda/cuda_api.h"

using namespace retort;
using retort::bench::OpCase;

namespace {

struct Args {
  std::string device = "all", only, json;
  int repeats = 7;
  bool small = false, check = true;
};

Args parse_args(int argc, char** argv) {
  Args a;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) throw Error(fmt::format("{} needs a value", argv[i]));
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--repeats") a.repeats = std::stoi(value(i));
    else if (flag == "--only") a.only = value(i);
    else if (flag == "--device") a.device = value(i);
    else if (flag == "--json") a.json = value(i);
    else if (flag == "--small") a.small = true;
    else if (flag == "--no-check") a.check = false;
    else throw Error(fmt::format("unknown argument '{}'", flag));
  }
  RETORT_CHECK(a.repeats >= 1, "--repeats must be at least 1");
  RETORT_CHECK(a.device == "all" || a.device == "cpu" || a.device == "cuda", "--device must be cpu, cuda or all");
  return a;
}

std::vector<Device> devices_for(const Args& a) {
  std::vector<Device> out;
  if (a.device != "cuda") out.push_back(Device::cpu());
  if (a.device != "cpu") {
    if (cuda_available()) out.push_back(resolve_device("cuda:0"));
    else if (a.device == "cuda") fail("--device cuda: no usable GPU ({})", cuda_unavailable_reason());
    else std::fprintf(stderr, "[bench] no usable GPU (%s): CPU only\n", cuda_unavailable_reason().c_str());
  }
  return out;
}

void wait(Device d) {
  if (d.is_cuda()) cuda::synchronize();
}

// Median milliseconds per call of `body`: one warm-up call (cuDNN's algorithm search, pool
// growth), then `repeats` timings of a batch of calls sized to last about 20 ms, so launch and
// synchronisation costs are spread over many calls.
double median_ms(const std::function<void()>& body, int repeats, Device d) {
  using Clock = std::chrono::steady_clock;
  body();
  wait(d);
  auto t0 = Clock::now();
  body();
  wait(d);
  const double once = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const int calls = std::clamp(int(20.0 / std::max(once, 1e-3)), 1, 200);
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    t0 = Clock::now();
    for (int k = 0; k < calls; ++k) body();
    wait(d);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / calls);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double max_rel_err(const Tensor& a, const Tensor& b) {
  auto va = a.to_vector(), vb = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const double e = std::abs(va[i] - vb[i]) / (1.0 + std::abs(vb[i]));
    if (std::isnan(e)) return NAN;
    worst = std::max(worst, e);
  }
  return worst;
}

struct Record {
  std::string op, family, device;
  double fwd_ms = 0, fwd_bwd_ms = NAN, gbps = NAN, tflops = NAN, err = NAN, bytes = 0, flops = 0;
};

Record run_case(const OpCase& c, Device d, const Args& a) {
  Record r{c.name, c.family, d.str()};
  r.bytes = c.bytes;
  r.flops = c.flops;
  if (c.custom) {
    r.fwd_ms = median_ms(c.custom(d), a.repeats, d);
  } else {
    std::vector<Tensor> in;
    for (size_t k = 0; k < c.shapes.size(); ++k) {
      Generator g(1000 + k);
      in.push_back((rand(c.shapes[k], g, DType::f32, d) * 2.0 - 1.0).detach());
    }
    if (c.check && a.check && d.is_cuda()) {
      NoGradGuard ng;
      std::vector<Tensor> cpu_in;
      for (auto& t : in) cpu_in.push_back(t.to(Device::cpu()));
      r.err = max_rel_err(c.forward(in).to(Device::cpu()), c.forward(cpu_in));
    }
    r.fwd_ms = median_ms([&] { NoGradGuard ng; c.forward(in); }, a.repeats, d);
    if (c.backward) {
      for (auto& t : in) t.requires_grad_(true);
      Tensor w;
      {
        NoGradGuard ng;
        Generator g(7);
        w = rand(c.forward(in).shape(), g, DType::f32, d);
      }
      r.fwd_bwd_ms = median_ms([&] {
        for (auto& t : in) t.zero_grad();
        sum(mul(c.forward(in), w)).backward();
      }, a.repeats, d);
    }
  }
  if (r.bytes > 0) r.gbps = r.bytes / (r.fwd_ms * 1e-3) / 1e9;
  if (r.flops > 0) r.tflops = r.flops / (r.fwd_ms * 1e-3) / 1e12;
  return r;
}

std::string cell(double v, const char* f) { return std::isnan(v) ? "" : fmt::format(fmt::runtime(f), v); }

nlohmann::json to_json(const Record& r) {
  auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  return {{"op", r.op},         {"family", r.family},         {"device", r.device},
          {"fwd_ms", r.fwd_ms}, {"fwd_bwd_ms", num(r.fwd_bwd_ms)}, {"gbps", num(r.gbps)},
          {"tflops", num(r.tflops)}, {"max_rel_err_vs_cpu", num(r.err)}, {"bytes", r.bytes}, {"flops", r.flops}};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse_args(argc, argv);
    const std::vector<Device> devices = devices_for(a);
    std::vector<Record> records;
    std::printf("| op | family | device | forward ms | GB/s | %% of copy | TFLOP/s | %% of GEMM | forward+backward ms "
                "| max rel. err vs CPU |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (Device d : devices) {
      double copy_gbps = NAN, gemm_tflops = NAN;  // this device's ceilings (the first two cases)
      for (const OpCase& c : bench::make_op_cases(a.small)) {
        const bool ceiling = c.family == "ceiling";
        if (!ceiling && !a.only.empty() && c.name.find(a.only) == std::string::npos) continue;
        if (c.gpu_only && !d.is_cuda()) continue;
        Record r = run_case(c, d, a);
        if (ceiling && std::isnan(copy_gbps) && c.flops == 0) copy_gbps = r.gbps;
        if (ceiling && std::isnan(gemm_tflops) && c.flops > 0) gemm_tflops = r.tflops;
        std::printf("| %s | %s | %s | %.4f | %s | %s | %s | %s | %s | %s |\n", r.op.c_str(), r.family.c_str(),
                    r.device.c_str(), r.fwd_ms, cell(r.gbps, "{:.1f}").c_str(),
                    cell(100.0 * r.gbps / copy_gbps, "{:.0f}%").c_str(), cell(r.tflops, "{:.3f}").c_str(),
                    cell(100.0 * r.tflops / gemm_tflops, "{:.0f}%").c_str(), cell(r.fwd_bwd_ms, "{:.4f}").c_str(),
                    cell(r.err, "{:.2e}").c_str());
        std::fflush(stdout);
        records.push_back(r);
      }
    }
    if (!a.json.empty()) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& r : records) out.push_back(to_json(r));
      const std::string tmp = a.json + ".tmp";
      std::ofstream(tmp) << out.dump(1) << "\n";
      std::rename(tmp.c_str(), a.json.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "retort_bench: error: %s\n", e.what());
    return 2;
  }
}
