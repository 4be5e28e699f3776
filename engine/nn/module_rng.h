// Random state held inside modules (each Dropout owns a Generator), written to and read from a
// checkpoint's key/values, so a resumed run draws the same dropout masks as an uninterrupted one.
#pragma once
#include <string>
#include "engine/io/safetensors.h"
#include "engine/nn/module.h"

namespace retort::nn {

// The prefix of these entries in a model file's metadata (models/<name>.safetensors, stage-cache
// entries): "rng.<module path>".
inline constexpr const char* kModelFileRngPrefix = "rng.";

// Adds "<prefix><module path>" = "<seed> <offset>" for every Dropout in `module` to `out`.
void capture_module_rngs(const Module& module, const std::string& prefix, StringMap& out);

// Sets every Dropout's generator from `in`. A checkpoint without the entries (written before
// they existed) leaves the generators as built; a malformed entry is an error naming it.
void restore_module_rngs(Module& module, const std::string& prefix, const StringMap& in);

}  // namespace retort::nn
