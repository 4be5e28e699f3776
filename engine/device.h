// Devices (cpu, cuda:N), parsing "auto|cpu|cuda[:N]", and whether a usable GPU is present.
#pragma once
#include <string>

namespace retort {

enum class DeviceKind : uint8_t { cpu, cuda };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;
  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceKind::cuda, i}; }
  bool is_cpu() const { return kind == DeviceKind::cpu; }
  bool is_cuda() const { return kind == DeviceKind::cuda; }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
  bool operator==(const Device&) const = default;
};

// True when retort was built with CUDA *and* a driver and at least one GPU answer.
bool cuda_available();
// Why CUDA is not usable (empty when it is): "built without CUDA", "no CUDA driver", ...
std::string cuda_unavailable_reason();
int cuda_device_count();

// "auto" -> cuda:0 when usable, else cpu (and says so once on stderr); "cuda" without a
// usable GPU throws a retort::Error that says why. Unknown names throw too.
Device resolve_device(const std::string& name);

}  // namespace retort
