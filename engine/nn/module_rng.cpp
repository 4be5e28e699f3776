// Dropout generator states to and from checkpoint key/values ("seed offset" as decimal text).
#include "engine/nn/module_rng.h"
#include <sstream>
#include <fmt/format.h>
#include "engine/error.h"
#include "engine/nn/layers.h"

namespace retort::nn {

void capture_module_rngs(const Module& module, const std::string& prefix, StringMap& out) {
  for (auto& [name, m] : module.named_modules())
    if (auto* drop = dynamic_cast<Dropout*>(m))
      out[prefix + name] = fmt::format("{} {}", drop->generator().seed(), drop->generator().offset());
}

void restore_module_rngs(Module& module, const std::string& prefix, const StringMap& in) {
  for (auto& [name, m] : module.named_modules()) {
    auto* drop = dynamic_cast<Dropout*>(m);
    if (!drop) continue;
    auto it = in.find(prefix + name);
    if (it == in.end()) continue;
    std::istringstream text(it->second);
    uint64_t seed = 0, offset = 0;
    std::string rest;
    RETORT_CHECK((text >> seed >> offset) && !(text >> rest), "checkpoint entry '{}' = '{}' is not '<seed> <offset>'",
                 it->first, it->second);
    drop->generator().set_state(seed, offset);
  }
}

}  // namespace retort::nn
