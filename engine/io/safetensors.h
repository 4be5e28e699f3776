// safetensors read/write: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
// then the raw row-major little-endian bytes. Writing is atomic (temp file, fsync, rename);
// reading validates the whole file first (engine/io/safetensors_format.h says exactly what is
// checked) and names the file, the byte offset, the tensor and the reason of any defect.
// Loading: F32, F64, BF16, I64, U8 as themselves; F16 is converted to F32 (exact).
// Large files are memory-mapped rather than read: each tensor is then decoded from the mapping
// straight into its own aligned storage (data offsets need not be aligned), and the mapping is
// released before read_safetensors returns. (A file truncated by another process while it is
// mapped can still raise SIGBUS; nothing in retort shortens files it reads.)
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>
#include "engine/io/safetensors_format.h"
#include "engine/tensor.h"

namespace retort {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What a safetensors file holds: tensors (on the CPU) in the header's order, plus metadata.
struct SafetensorsContents {
  NamedTensors tensors;
  StringMap metadata;
  StringMap stored_dtypes;     // name -> dtype as stored in the file ("F16", "BF16", ...)
  bool memory_mapped = false;  // whether the file was read through mmap

  bool contains(const std::string& name) const;
  // The tensor called `name`; throws a retort::Error naming the file's tensors when absent.
  const Tensor& at(const std::string& name) const;
};

// The safetensors dtype string ("F32", "F64", "BF16", "I64", "U8") and back.
const char* safetensors_dtype_name(DType dtype);
bool parse_safetensors_dtype(const std::string& name, DType& out);

// Writes `tensors` (any device, any layout; stored row-major in list order) and `metadata`
// to `path` atomically: the bytes go to "<path>.tmp.<pid>", are flushed and fsync'ed, then
// renamed over `path`. On any failure the temp file is removed, `path` is left as it was,
// and a retort::Error says what went wrong. Names must be unique, non-empty, not "__metadata__".
void write_safetensors(const std::string& path, const NamedTensors& tensors, const StringMap& metadata = {});

// Reads and validates a whole file. Any defect (short file, header length past the end or
// over 100 MB, bad JSON, unknown dtype, bad shape, offsets out of range / overlapping /
// leaving holes / not matching shape x dtype size, trailing bytes) throws a retort::Error of
// the form "<path>: byte <offset>: [tensor '<name>': ]<what was wrong>".
SafetensorsContents read_safetensors(const std::string& path);

struct SafetensorsReadOptions {
  uint64_t mmap_threshold_bytes = uint64_t(1) << 20;  // files this large or larger are mmap'ed
};
SafetensorsContents read_safetensors(const std::string& path, const SafetensorsReadOptions& options);

// The same on bytes in memory (a whole file's content); `label` stands for the path in errors.
SafetensorsContents parse_safetensors(const void* bytes, size_t size, const std::string& label);

namespace testing {
// Fault injection for tests: the next write_safetensors fails like a full disk once this
// many bytes have been written to the temp file (-1, the default, disables it). One-shot.
void fail_next_safetensors_write_after(int64_t bytes);
}  // namespace testing

}  // namespace retort
