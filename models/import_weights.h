// Loading weights from safetensors files into retort models by name: torchvision ResNets,
// timm ViTs, retort's own model files and checkpoints. One loader serves `retort import`,
// `retort eval` and a recipe's `weights = "file.safetensors"`.
//
// Like PyTorch's load_state_dict(strict=True): every tensor of the model must be in the file
// and every tensor in the file must belong to the model; all missing and unexpected names and
// all shape mismatches are listed in one retort::Error, and nothing is modified unless
// everything fits. Non-strict loading (strict = false) loads what matches and returns the
// missing/unexpected names as warnings; shape mismatches stay errors (as in PyTorch).
// Tolerated without error, as PyTorch's BatchNorm does for old checkpoints: a missing
// "*.num_batches_tracked" (kept at 0, listed in the report).
// Conversions: BF16, F16 and F64 tensors are converted to the model's dtype (f32).
// A ViT's pos_embed whose patch grid differs from the model's is resampled as timm's
// resample_abs_pos_embed does by default: the class token kept, the grid resized with
// F.interpolate(mode="bicubic", antialias=True, align_corners=False) (PyTorch's separable
// antialiased bicubic, Keys a = -0.5, weights normalised per output), computed in double.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>
#include "models/model.h"

namespace retort::models {

// What loading does with a file's classifier (fc / head, and DeiT's head_dist): load it (it must
// fit the model's), or leave it out: reset keeps the model's own freshly initialised head (a new
// task's), drop goes with a model built without one (num_classes = 0: a feature extractor).
enum class HeadPolicy { keep, reset, drop };
const char* to_string(HeadPolicy policy);
HeadPolicy parse_head_policy(const std::string& name);  // "keep" | "reset" | "drop"; else an error

struct ImportOptions {
  bool strict = true;
  bool resample_pos_embed = true;  // ViT: resample a pos_embed with another grid
  HeadPolicy head = HeadPolicy::keep;
};

struct ImportReport {
  std::string source;                   // the file
  int64_t loaded = 0;                   // tensors copied into the model
  std::vector<std::string> missing;     // in the model, not in the file (non-strict only)
  std::vector<std::string> unexpected;  // in the file, not in the model (non-strict only)
  std::vector<std::string> defaulted;   // missing num_batches_tracked buffers (kept at 0)
  std::map<std::string, int64_t> converted;  // "BF16 -> f32" -> how many tensors
  std::string pos_embed_resampled;      // what was resampled, "" when nothing was
  std::vector<std::string> head_left;   // the file's classifier tensors not loaded (head reset / drop), with shapes
  std::string head_note;                // what happened to the head instead, "" when it was loaded
  std::vector<std::string> lines() const;  // human-readable summary, one fact per line
};

// The model tensors held by a safetensors file: a plain state dict (names as stored), or the
// "model." tensors of a retort checkpoint (metadata retort.format), prefix removed. The second
// map gives each tensor's dtype as stored ("F16", "BF16", ...).
struct StoredState {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> stored_dtypes;
  bool from_checkpoint = false;
  std::string arch;  // the architecture the file says it holds (retort's model files), or ""
  std::map<std::string, std::string> metadata;  // the file's metadata, as stored
};
StoredState read_model_state(const std::string& path);

// Loads `state` into `model` (see the header comment). `source` names the file in messages.
ImportReport load_weights(Model& model, const StoredState& state, const std::string& source,
                          const ImportOptions& options = {});
// read_model_state + load_weights; `log` (optional) receives the report's lines.
ImportReport load_weights_file(Model& model, const std::string& path, const ImportOptions& options = {},
                               const std::function<void(const std::string&)>& log = {});

// timm resample_abs_pos_embed with its defaults (bicubic, antialias=True): pos [1, P + H*W, D]
// with P prefix (class) tokens kept as they are and an old_h x old_w grid resized to
// new_h x new_w. Returns [1, P + new_h*new_w, D] in pos's dtype.
Tensor resample_pos_embed(const Tensor& pos, int64_t old_h, int64_t old_w, int64_t new_h, int64_t new_w,
                          int64_t prefix_tokens = 1);

// `retort import`: the model config for `arch` that fits the file: in_channels from the first
// conv, num_classes from the classifier (fc / head) unless given (> 0), ViT patch size and
// depth from the file unless the name says (vit_<size>_patch<P>_<S>), image size given (> 0),
// else from the name, else the ViT's pos_embed grid x patch, else 224. Returns the registry
// name to build (a timm-style ViT name reduced to its size name).
struct ImportTarget {
  std::string arch;
  ModelConfig config;
};
ImportTarget import_target(const std::string& arch, const StoredState& state, int64_t image_size, int64_t num_classes);

}  // namespace retort::models
