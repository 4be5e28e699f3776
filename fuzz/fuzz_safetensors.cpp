// Fuzz target for the safetensors reader: every input is a whole "file". The bytes go through
// parse_safetensors_index (all of the validation read_safetensors does) and, when they are
// accepted, every entry is decoded (F16 -> F32 included) into a buffer of exactly the size the
// loaded tensor would have, so ASan sees any read past the input or write past the buffer.
#include <cstdlib>
#include <vector>
#include "core/dtype.h"
#include "engine/error.h"
#include "engine/io/safetensors_format.h"
#include "fuzz/fuzz_targets.h"

namespace retort::fuzz {

Outcome safetensors_input(const uint8_t* data, size_t size) {
  try {
    SafetensorsIndex index = parse_safetensors_index(data, size, "fuzz-input");
    for (const auto& e : index.entries) {
      if (e.begin > index.file_size - index.data_start || e.end > index.file_size - index.data_start) std::abort();
      std::vector<unsigned char> out(size_t(e.numel) * dtype_size(e.dtype));
      decode_safetensors_entry(e, data + index.data_start + e.begin, out.data());
    }
    return Outcome::accept();
  } catch (const Error& e) {
    return Outcome::reject(e.what());
  }
}

}  // namespace retort::fuzz

RETORT_FUZZ_TARGET(safetensors_input)
