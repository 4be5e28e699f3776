// safetensors writer (atomic: temp file + fsync + rename) and validating reader.
#include "engine/io/safetensors.h"
#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <nlohmann/json.hpp>
#include "kernels/layout.h"
#include "engine/error.h"

namespace retort {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

using ojson = nlohmann::ordered_json;

namespace {
std::atomic<int64_t> g_fail_after_bytes{-1};

constexpr const char* kMetadataKey = "__metadata__";

std::string errno_text() { return std::strerror(errno); }

// ------------------------------------------------------------------ writing
// Owns the temp file: closes and removes it unless commit() renamed it over the target.
class TempFile {
 public:
  TempFile(const std::string& target) : target_(target), path_(target + ".tmp." + std::to_string(::getpid())) {
    file_ = std::fopen(path_.c_str(), "wb");
    RETORT_CHECK(file_, "write_safetensors: cannot create the temp file '{}' for '{}': {}", path_, target_,
                 errno_text());
    fail_after_ = g_fail_after_bytes.exchange(-1);
  }
  ~TempFile() {
    if (file_) std::fclose(file_);
    if (!committed_) std::remove(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* data, size_t n) {
    if (n == 0) return;
    if (fail_after_ >= 0 && written_ + int64_t(n) > fail_after_)
      fail("write_safetensors: writing '{}' failed after {} bytes: injected fault (simulated full disk)", path_,
           fail_after_);
    size_t done = std::fwrite(data, 1, n, file_);
    RETORT_CHECK(done == n, "write_safetensors: writing '{}' failed after {} bytes: {}", path_, written_ + int64_t(done),
                 errno_text());
    written_ += int64_t(n);
  }
  void commit() {
    RETORT_CHECK(std::fflush(file_) == 0, "write_safetensors: flushing '{}' failed: {}", path_, errno_text());
    RETORT_CHECK(::fsync(::fileno(file_)) == 0, "write_safetensors: fsync of '{}' failed: {}", path_, errno_text());
    int rc = std::fclose(file_);
    file_ = nullptr;
    RETORT_CHECK(rc == 0, "write_safetensors: closing '{}' failed: {}", path_, errno_text());
    RETORT_CHECK(std::rename(path_.c_str(), target_.c_str()) == 0,
                 "write_safetensors: renaming '{}' over '{}' failed: {} (the previous '{}' is unchanged)", path_,
                 target_, errno_text(), target_);
    committed_ = true;
    sync_parent_directory();
  }

 private:
  // Makes the rename itself durable; best effort (some filesystems refuse fsync on a directory).
  void sync_parent_directory() {
    auto slash = target_.find_last_of('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : target_.substr(0, slash));
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
  std::string target_, path_;
  FILE* file_ = nullptr;
  int64_t written_ = 0, fail_after_ = -1;
  bool committed_ = false;
};

void check_names(const NamedTensors& tensors, const std::string& path) {
  std::set<std::string> seen;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    RETORT_CHECK(!name.empty(), "write_safetensors '{}': tensor {} has an empty name", path, i);
    RETORT_CHECK(name != kMetadataKey, "write_safetensors '{}': '{}' is reserved for metadata, not a tensor name", path,
                 name);
    RETORT_CHECK(seen.insert(name).second, "write_safetensors '{}': the name '{}' is used twice", path, name);
    RETORT_CHECK(t.defined(), "write_safetensors '{}': tensor '{}' is undefined", path, name);
  }
}

// ------------------------------------------------------------------ reading
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "rb");
    RETORT_CHECK(file_, "read_safetensors: cannot open '{}': {}", path, errno_text());
    RETORT_CHECK(std::fseek(file_, 0, SEEK_END) == 0, "read_safetensors: cannot seek in '{}': {}", path, errno_text());
    long size = std::ftell(file_);
    RETORT_CHECK(size >= 0, "read_safetensors: cannot size '{}': {}", path, errno_text());
    size_ = uint64_t(size);
  }
  ~Reader() { std::fclose(file_); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  uint64_t size() const { return size_; }
  void read_at(uint64_t offset, void* dst, size_t n) {
    if (n == 0) return;
    RETORT_CHECK(std::fseek(file_, long(offset), SEEK_SET) == 0 && std::fread(dst, 1, n, file_) == n,
                 "{}: byte {}: reading {} bytes failed: {}", path_, offset, n, errno_text());
  }
  template <typename... Args>
  [[noreturn]] void corrupt(uint64_t byte, fmt::format_string<Args...> f, Args&&... args) const {
    fail("{}: byte {}: {}", path_, byte, fmt::format(f, std::forward<Args>(args)...));
  }

 private:
  std::string path_;
  FILE* file_ = nullptr;
  uint64_t size_ = 0;
};

// The part of nlohmann's parse error after its own "line, column" prefix.
std::string json_error_detail(const char* what) {
  std::string w = what;
  auto p = w.find("column");
  if (p != std::string::npos) p = w.find(": ", p);
  return p == std::string::npos ? w : w.substr(p + 2);
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;
  uint64_t header_byte = 0;  // where the entry's name appears in the file (for messages)
};

}  // namespace

namespace testing {
void fail_next_safetensors_write_after(int64_t bytes) { g_fail_after_bytes = bytes; }
}  // namespace testing

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
  }
  fail("safetensors: dtype {} has no safetensors name", dtype_name(dtype));
}

bool parse_safetensors_dtype(const std::string& name, DType& out) {
  for (DType d : {DType::f32, DType::f64, DType::bf16, DType::i64, DType::u8})
    if (name == safetensors_dtype_name(d)) {
      out = d;
      return true;
    }
  return false;
}

bool SafetensorsContents::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(), [&](const auto& p) { return p.first == name; });
}
const Tensor& SafetensorsContents::at(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  std::vector<std::string> names;
  for (const auto& p : tensors) names.push_back(p.first);
  fail("safetensors: no tensor named '{}' (the file holds: {})", name, fmt::join(names, ", "));
}

void write_safetensors(const std::string& path, const NamedTensors& tensors, const StringMap& metadata) {
  RETORT_CHECK(!path.empty(), "write_safetensors: empty path");
  check_names(tensors, path);
  // Header first: every tensor's dtype and byte range, in list order.
  ojson header = ojson::object();
  if (!metadata.empty()) {
    ojson meta = ojson::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[kMetadataKey] = meta;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    uint64_t n = t.nbytes();
    header[name] = {{"dtype", safetensors_dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a name or metadata value that is not UTF-8
    fail("write_safetensors '{}': cannot encode the header: {}", path, e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data starts 8-byte aligned
  uint64_t header_len = text.size();

  TempFile out(path);
  out.write(&header_len, 8);
  out.write(text.data(), text.size());
  for (const auto& [name, t] : tensors) {
    Tensor host = t.detach().to(Device::cpu()).contiguous();
    out.write(host.raw_data(), host.nbytes());
  }
  out.commit();
}

SafetensorsContents read_safetensors(const std::string& path) {
  Reader in(path);
  const uint64_t size = in.size();
  if (size < 8) in.corrupt(0, "the file is {} bytes, shorter than the 8-byte header length", size);
  uint64_t header_len = 0;
  in.read_at(0, &header_len, 8);
  if (header_len > size - 8)
    in.corrupt(0, "header length {} is larger than the {} bytes that follow it (file size {})", header_len, size - 8,
               size);
  std::string text(size_t(header_len), '\0');
  in.read_at(8, text.data(), text.size());
  const uint64_t data_start = 8 + header_len, data_size = size - data_start;

  // Top-level keys must be unique (a JSON object with a repeated key would silently keep one).
  struct DuplicateKey {
    std::string key;
  };
  std::set<std::string> top_keys;
  auto reject_duplicates = [&](int depth, ojson::parse_event_t event, ojson& parsed) {
    if (event == ojson::parse_event_t::key && depth == 1 && !top_keys.insert(parsed.get<std::string>()).second)
      throw DuplicateKey{parsed.get<std::string>()};
    return true;
  };
  ojson header;
  try {
    header = ojson::parse(text, reject_duplicates);
  } catch (const nlohmann::json::parse_error& e) {
    uint64_t pos = e.byte > 0 ? uint64_t(e.byte) - 1 : 0;
    in.corrupt(8 + std::min<uint64_t>(pos, header_len), "header is not valid JSON: {}", json_error_detail(e.what()));
  } catch (const DuplicateKey& d) {
    std::string quoted = ojson(d.key).dump();
    auto first = text.find(quoted);
    auto second = first == std::string::npos ? first : text.find(quoted, first + 1);
    in.corrupt(8 + (second == std::string::npos ? 0 : second), "the name '{}' appears twice in the header", d.key);
  }
  if (!header.is_object()) in.corrupt(8, "header is a JSON {}, not an object", header.type_name());

  // Where a key first appears in the header text: the byte to report for that entry.
  auto key_byte = [&](const std::string& key) -> uint64_t {
    auto p = text.find(ojson(key).dump());
    return 8 + (p == std::string::npos ? 0 : p);
  };

  SafetensorsContents result;
  std::vector<Entry> entries;
  for (const auto& [name, spec] : header.items()) {
    uint64_t at = key_byte(name);
    if (name == kMetadataKey) {
      if (!spec.is_object()) in.corrupt(at, "\"__metadata__\" must be an object of strings, got a {}", spec.type_name());
      for (const auto& [k, v] : spec.items()) {
        if (!v.is_string()) in.corrupt(key_byte(k), "metadata value of '{}' must be a string, got a {}", k, v.type_name());
        result.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    Entry e;
    e.name = name;
    e.header_byte = at;
    if (!spec.is_object()) in.corrupt(at, "tensor '{}': entry must be an object, got a {}", name, spec.type_name());
    if (!spec.contains("dtype") || !spec["dtype"].is_string())
      in.corrupt(at, "tensor '{}': missing or non-string \"dtype\"", name);
    std::string dt = spec["dtype"].get<std::string>();
    if (!parse_safetensors_dtype(dt, e.dtype))
      in.corrupt(at, "tensor '{}': unknown dtype \"{}\" (retort reads F32, F64, BF16, I64, U8)", name, dt);
    if (!spec.contains("shape") || !spec["shape"].is_array())
      in.corrupt(at, "tensor '{}': missing or non-array \"shape\"", name);
    uint64_t numel = 1;
    for (const auto& d : spec["shape"]) {
      if (!d.is_number_unsigned()) in.corrupt(at, "tensor '{}': shape {} has an entry that is not a non-negative integer", name, spec["shape"].dump());
      uint64_t v = d.get<uint64_t>();
      if (v > uint64_t(std::numeric_limits<int64_t>::max()) || (v != 0 && numel > size / v))
        in.corrupt(at, "tensor '{}': shape {} is larger than the whole file", name, spec["shape"].dump());
      numel *= v;
      e.shape.push_back(int64_t(v));
    }
    if (e.shape.size() > size_t(kMaxDims)) in.corrupt(at, "tensor '{}': {} dims, retort supports at most {}", name, e.shape.size(), kMaxDims);
    const auto& offs = spec.contains("data_offsets") ? spec["data_offsets"] : ojson();
    if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned())
      in.corrupt(at, "tensor '{}': \"data_offsets\" must be [begin, end] with non-negative integers", name);
    e.begin = offs[0].get<uint64_t>();
    e.end = offs[1].get<uint64_t>();
    if (e.begin > e.end) in.corrupt(at, "tensor '{}': data_offsets [{}, {}] end before they begin", name, e.begin, e.end);
    if (e.end > data_size)
      in.corrupt(data_start + std::min(e.begin, data_size), "tensor '{}': data_offsets [{}, {}] reach past the end of the file (the data region holds {} bytes)",
                 name, e.begin, e.end, data_size);
    uint64_t want = numel * dtype_size(e.dtype);
    if (e.end - e.begin != want)
      in.corrupt(data_start + e.begin, "tensor '{}': data_offsets [{}, {}] cover {} bytes but {} {} needs {}", name, e.begin,
                 e.end, e.end - e.begin, dt, shape_str(e.shape), want);
    entries.push_back(std::move(e));
  }

  // The byte ranges must tile the data region exactly: no overlap, no hole, nothing after.
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : by_offset) {
    if (e->begin < covered)
      in.corrupt(data_start + e->begin, "tensor '{}' (data_offsets [{}, {}]) overlaps tensor '{}' (data_offsets [{}, {}])",
                 e->name, e->begin, e->end, prev->name, prev->begin, prev->end);
    if (e->begin > covered)
      in.corrupt(data_start + covered, "{} bytes before tensor '{}' belong to no tensor", e->begin - covered, e->name);
    covered = e->end;
    prev = e;
  }
  if (covered < data_size)
    in.corrupt(data_start + covered, "{} bytes of trailing data after the last tensor", data_size - covered);

  for (const auto& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    in.read_at(data_start + e.begin, t.raw_data(), size_t(e.end - e.begin));
    result.tensors.emplace_back(e.name, std::move(t));
  }
  return result;
}

}  // namespace retort
