// Fuzz target for the CIFAR binary reader: the input's first byte picks CIFAR-10 (even) or
// CIFAR-100 (odd), the rest is a data batch file; what is read must form a valid dataset.
#include "engine/data/cifar.h"
#include "engine/error.h"
#include "fuzz/fuzz_file.h"
#include "fuzz/fuzz_targets.h"

namespace retort::fuzz {

Outcome cifar_input(const uint8_t* data, size_t size) {
  if (size == 0) return Outcome::reject("empty input");
  const int classes = data[0] % 2 ? 100 : 10;
  const std::string path = write_input(data + 1, size - 1, ".bin");
  data::Dataset into;
  into.channels = 3, into.height = 32, into.width = 32, into.num_classes = classes;
  try {
    data::append_cifar_file(path, classes, into);
    into.validate();
    return Outcome::accept();
  } catch (const Error& e) {
    return Outcome::reject(e.what());
  }
}

}  // namespace retort::fuzz

RETORT_FUZZ_TARGET(cifar_input)
