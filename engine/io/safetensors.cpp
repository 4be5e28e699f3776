// safetensors writer (atomic: temp file + fsync + rename) and reader (mmap or read, then
// engine/io/safetensors_format validates and decodes).
#include "engine/io/safetensors.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
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
#include <zlib.h>
#include "core/layout.h"
#include "engine/error.h"

namespace retort {

using ojson = nlohmann::ordered_json;

namespace {
std::atomic<int64_t> g_fail_after_bytes{-1};

constexpr const char* kMetadataKey = "__metadata__";
// Metadata key of the per-tensor CRC-32s retort writes (header order, 8 hex digits each, comma
// separated) and verifies on reading; it is not returned with the caller's metadata.
constexpr const char* kChecksumKey = "retort.crc32";

uint32_t crc_of(const void* bytes, size_t n) {
  return uint32_t(crc32_z(crc32_z(0L, Z_NULL, 0), static_cast<const Bytef*>(bytes), n));
}

// Checks a file's stored checksums against its tensors' bytes, then drops the key.
void verify_checksums(SafetensorsIndex& index, const unsigned char* bytes, const std::string& label) {
  auto it = index.metadata.find(kChecksumKey);
  if (it == index.metadata.end()) return;  // not written by retort (torchvision, timm, older files)
  const std::string& sums = it->second;
  RETORT_CHECK(sums.size() == (index.entries.empty() ? 0 : index.entries.size() * 9 - 1),
               "{}: the checksums in its metadata ('{}') do not list its {} tensors: the header is damaged", label,
               kChecksumKey, index.entries.size());
  for (size_t i = 0; i < index.entries.size(); ++i) {
    const auto& e = index.entries[i];
    const uint32_t stored = uint32_t(std::strtoul(sums.substr(i * 9, 8).c_str(), nullptr, 16));
    const uint32_t actual = crc_of(bytes + index.data_start + e.begin, size_t(e.end - e.begin));
    RETORT_CHECK(stored == actual,
                 "{}: byte {}: tensor '{}' (bytes {} to {}) does not match the checksum stored when it was written: "
                 "the file is damaged (a flipped bit or a partial copy); restore it, or delete it to start over",
                 label, index.data_start + e.begin, e.name, index.data_start + e.begin, index.data_start + e.end);
  }
  index.metadata.erase(it);
}

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
  // Overwrites bytes already written at `offset` (the checksums in the header).
  void patch(uint64_t offset, const std::string& text) {
    RETORT_CHECK(std::fseek(file_, long(offset), SEEK_SET) == 0 && std::fwrite(text.data(), 1, text.size(), file_) ==
                                                                        text.size() &&
                     std::fseek(file_, 0, SEEK_END) == 0,
                 "write_safetensors: writing '{}' failed: {}", path_, errno_text());
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
// A whole file's bytes: memory-mapped when it is at least mmap_threshold bytes, else read.
class FileBytes {
 public:
  FileBytes(const std::string& path, uint64_t mmap_threshold) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    RETORT_CHECK(fd_ >= 0, "read_safetensors: cannot open '{}': {}", path, errno_text());
    struct stat st {};
    if (::fstat(fd_, &st) != 0) close_and_fail(path, "cannot stat", errno_text());
    if (!S_ISREG(st.st_mode)) close_and_fail(path, "cannot read", "not a regular file");
    size_ = size_t(st.st_size);
    if (size_ > 0 && uint64_t(size_) >= mmap_threshold) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      if (p == MAP_FAILED) close_and_fail(path, "cannot memory-map", errno_text());
      ::madvise(p, size_, MADV_SEQUENTIAL);
      mapped_ = static_cast<unsigned char*>(p);
      return;
    }
    buffer_.resize(size_);
    size_t done = 0;
    while (done < size_) {
      ssize_t got = ::read(fd_, buffer_.data() + done, size_ - done);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) close_and_fail(path, fmt::format("reading byte {} failed", done), got < 0 ? errno_text() : "the file shrank");
      done += size_t(got);
    }
  }
  ~FileBytes() {
    if (mapped_) ::munmap(mapped_, size_);
    if (fd_ >= 0) ::close(fd_);
  }
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;

  const unsigned char* data() const { return mapped_ ? mapped_ : buffer_.data(); }
  size_t size() const { return size_; }
  bool mapped() const { return mapped_ != nullptr; }

 private:
  [[noreturn]] void close_and_fail(const std::string& path, const std::string& what, const std::string& why) {
    ::close(fd_);
    fd_ = -1;
    fail("read_safetensors: {} '{}': {}", what, path, why);
  }
  int fd_ = -1;
  size_t size_ = 0;
  unsigned char* mapped_ = nullptr;
  std::vector<unsigned char> buffer_;
};

// Tensors from a validated index: each entry decoded into its own (aligned) storage.
SafetensorsContents contents_from(const SafetensorsIndex& index, const unsigned char* bytes) {
  SafetensorsContents result;
  result.metadata = index.metadata;
  result.tensors.reserve(index.entries.size());
  for (const auto& e : index.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    decode_safetensors_entry(e, bytes + index.data_start + e.begin, t.raw_data());
    result.tensors.emplace_back(e.name, std::move(t));
    result.stored_dtypes[e.name] = safetensors_file_dtype_name(e.file_dtype);
  }
  return result;
}

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
  ojson meta = ojson::object();
  for (const auto& [k, v] : metadata) meta[k] = v;
  // A placeholder of the checksums' exact length, filled in once the data is written.
  const std::string placeholder(tensors.empty() ? 0 : tensors.size() * 9 - 1, '0');
  meta[kChecksumKey] = placeholder;
  header[kMetadataKey] = meta;
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

  const std::string marker = fmt::format("\"{}\":\"", kChecksumKey);
  const size_t sums_at = text.find(marker) + marker.size();

  TempFile out(path);
  out.write(&header_len, 8);
  out.write(text.data(), text.size());
  std::string sums;
  for (const auto& [name, t] : tensors) {
    Tensor host = t.detach().to(Device::cpu()).contiguous();
    out.write(host.raw_data(), host.nbytes());
    sums += fmt::format("{}{:08x}", sums.empty() ? "" : ",", crc_of(host.raw_data(), host.nbytes()));
  }
  out.patch(8 + sums_at, sums);
  out.commit();
}

SafetensorsContents read_safetensors(const std::string& path, const SafetensorsReadOptions& options) {
  FileBytes file(path, options.mmap_threshold_bytes);
  SafetensorsIndex index = parse_safetensors_index(file.data(), file.size(), path);
  verify_checksums(index, file.data(), path);
  SafetensorsContents result = contents_from(index, file.data());
  result.memory_mapped = file.mapped();
  return result;
}

SafetensorsContents read_safetensors(const std::string& path) { return read_safetensors(path, SafetensorsReadOptions{}); }

SafetensorsContents parse_safetensors(const void* bytes, size_t size, const std::string& label) {
  RETORT_CHECK(bytes || size == 0, "parse_safetensors '{}': null bytes", label);
  const auto* b = static_cast<const unsigned char*>(bytes);
  SafetensorsIndex index = parse_safetensors_index(b, size, label);
  verify_checksums(index, b, label);
  return contents_from(index, b);
}

}  // namespace retort
