// Reads whole files through zlib's gz* API, which also reads uncompressed files unchanged.
#include "engine/data/byte_file.h"
#include <zlib.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include "engine/error.h"

namespace retort::data {

std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ec;
  RETORT_CHECK(std::filesystem::is_regular_file(path, ec), "{}: no such file (check the dataset directory)", path);
  gzFile f = gzopen(path.c_str(), "rb");
  RETORT_CHECK(f != nullptr, "{}: cannot open: {}", path, std::strerror(errno));
  gzbuffer(f, 1 << 18);
  std::vector<uint8_t> out;
  const bool compressed = gzdirect(f) == 0;
  auto size_hint = std::filesystem::file_size(path, ec);
  if (!ec) out.reserve(compressed ? size_t(size_hint) * 4 : size_t(size_hint));
  constexpr unsigned kChunk = 1u << 20;
  while (true) {
    size_t old = out.size();
    out.resize(old + kChunk);
    int got = gzread(f, out.data() + old, kChunk);
    int errnum = Z_OK;
    const char* msg = gzerror(f, &errnum);
    if (got < 0 || (errnum != Z_OK && errnum != Z_STREAM_END)) {
      std::string why = msg ? msg : "unknown zlib error";
      size_t have = old + size_t(std::max(got, 0));
      gzclose(f);
      fail("{}: gzip stream is truncated or corrupt after {} decompressed bytes ({}); re-download the file", path,
           have, why);
    }
    out.resize(old + size_t(got));
    if (got == 0) break;
  }
  gzclose(f);
  return out;
}

}  // namespace retort::data
