// Fuzz target for training checkpoints: the input is a checkpoint file, read for its progress
// and loaded into a small model's tensors ("w" [2,3], "b" [3]) and an SGD optimizer with
// momentum, whose state the file may hold. It is accepted when the load succeeds; a rejected
// load must leave the tensors as they were.
#include <cstdlib>
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/optim/sgd.h"
#include "fuzz/fuzz_file.h"
#include "fuzz/fuzz_targets.h"

namespace retort::fuzz {

Outcome checkpoint_input(const uint8_t* data, size_t size) {
  const std::string path = write_input(data, size, ".safetensors");
  try {
    read_checkpoint_progress(path);
  } catch (const Error&) {
  }
  Tensor w = Tensor::full({2, 3}, 0.5), b = Tensor::full({3}, -1.0);
  w.requires_grad_(true);
  b.requires_grad_(true);
  ParamGroup group;
  group.params = {w, b};
  group.lr = 0.1;
  SGD opt({group}, SgdOptions{0.9, false});
  const NamedTensors model = {{"w", w}, {"b", b}};
  try {
    load_checkpoint(path, model, &opt);
    return Outcome::accept();
  } catch (const Error& e) {
    if (w.to_vector() != std::vector<double>(6, 0.5) || b.to_vector() != std::vector<double>(3, -1.0)) std::abort();
    return Outcome::reject(e.what());
  }
}

}  // namespace retort::fuzz

RETORT_FUZZ_TARGET(checkpoint_input)
