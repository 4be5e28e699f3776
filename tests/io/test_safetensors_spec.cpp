// safetensors to the specification: F16 (converted to F32, subnormals/inf/NaN exact), BF16,
// F64 and I64 loading, the mmap and the read path giving the same tensors, the in-memory
// entry point, every defect class rejected naming the file, the tensor and the reason, and
// the fuzz corpus (tests/fuzz_corpus/safetensors) replayed: each file loads or throws Error.
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "io/temp_dir.h"

using namespace retort;
using retort::test::TempDir;
using retort::test::write_bytes;

namespace {
std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}
std::string st_file(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }
std::string u16s(const std::vector<uint16_t>& v) {
  std::string s(v.size() * 2, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// The error read_safetensors throws for these bytes (written to a file in dir).
std::string error_for(const TempDir& dir, const std::string& bytes) {
  std::string path = dir.file("bad.safetensors");
  write_bytes(path, bytes);
  try {
    read_safetensors(path);
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("no error for a malformed file");
  return {};
}
void check_names(const std::string& msg, const TempDir& dir, const std::string& tensor, const std::string& reason) {
  INFO("message: " << msg);
  CHECK(msg.find(dir.file("bad.safetensors")) != std::string::npos);
  if (!tensor.empty()) CHECK(msg.find("tensor '" + tensor + "'") != std::string::npos);
  CHECK(msg.find(reason) != std::string::npos);
}
}  // namespace

TEST_CASE("safetensors: F16 loads as F32, exactly, subnormals, infinities and NaN included") {
  // 1, -2, 0.5, -0, max normal 65504, min normal 2^-14, min subnormal 2^-24, max subnormal
  // 1023 * 2^-24, +inf, -inf, NaN.
  const std::vector<uint16_t> bits = {0x3C00, 0xC000, 0x3800, 0x8000, 0x7BFF, 0x0400,
                                      0x0001, 0x03FF, 0x7C00, 0xFC00, 0x7E00};
  const std::vector<double> want = {1.0, -2.0, 0.5, -0.0, 65504.0, std::ldexp(1.0, -14), std::ldexp(1.0, -24),
                                    1023 * std::ldexp(1.0, -24), INFINITY, -INFINITY};
  std::string header = R"({"h":{"dtype":"F16","shape":[11],"data_offsets":[0,22]}})";
  SafetensorsContents c = parse_safetensors(st_file(header, u16s(bits)).data(), 8 + header.size() + 22, "mem");
  const Tensor& h = c.at("h");
  CHECK(h.dtype() == DType::f32);
  CHECK(c.stored_dtypes.at("h") == "F16");
  std::vector<double> got = h.to_vector();
  REQUIRE(got.size() == 11);
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == want[i]);
  }
  CHECK(std::signbit(got[3]));
  CHECK(std::isnan(got[10]));
  // Every one of the 65536 F16 values against a reference computed with ldexp.
  for (uint32_t b = 0; b < 65536; ++b) {
    uint32_t e = (b >> 10) & 0x1f, m = b & 0x3ff;
    double sign = (b & 0x8000) ? -1.0 : 1.0;
    float f = f16_bits_to_f32(uint16_t(b));
    if (e == 0x1f) {
      if (m == 0) REQUIRE(f == float(sign * INFINITY));
      else REQUIRE(std::isnan(f));
      continue;
    }
    double ref = e == 0 ? sign * std::ldexp(double(m), -24) : sign * std::ldexp(double(m + 1024), int(e) - 25);
    REQUIRE(double(f) == ref);
    REQUIRE(std::signbit(f) == bool(b & 0x8000));
  }
}

TEST_CASE("safetensors: BF16, F64 and I64 (num_batches_tracked) load as themselves") {
  TempDir dir("st_dtypes");
  // BF16 1.5 = 0x3FC0, -3 = 0xC040; F64 0.1; I64 [] = 123456789012.
  std::string data = u16s({0x3FC0, 0xC040});
  double d = 0.1;
  int64_t n = 123456789012;
  data += std::string(reinterpret_cast<const char*>(&d), 8) + std::string(reinterpret_cast<const char*>(&n), 8);
  std::string header = R"({"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
                       R"("d":{"dtype":"F64","shape":[1,1],"data_offsets":[4,12]},)"
                       R"("bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[12,20]}})";
  write_bytes(dir.file("t.safetensors"), st_file(header, data));
  SafetensorsContents c = read_safetensors(dir.file("t.safetensors"));
  CHECK(c.at("b").dtype() == DType::bf16);
  CHECK(c.at("b").to_vector() == std::vector<double>{1.5, -3.0});
  CHECK(c.at("d").dtype() == DType::f64);
  CHECK(c.at("d").shape() == Shape{1, 1});
  CHECK(c.at("d").item() == 0.1);
  CHECK(c.at("bn.num_batches_tracked").dtype() == DType::i64);
  CHECK(c.at("bn.num_batches_tracked").dim() == 0);
  CHECK(c.at("bn.num_batches_tracked").to_i64_vector() == std::vector<int64_t>{n});
}

TEST_CASE("safetensors: the mmap path and the read path give the same tensors") {
  TempDir dir("st_mmap");
  Tensor big = retort::test::random_tensor({300, 1001}, 5, -1, 1, DType::f32);  // 1.2 MB: over the default threshold
  Tensor odd = retort::test::random_tensor({3}, 6, -1, 1, DType::f64);
  std::string path = dir.file("big.safetensors");
  write_safetensors(path, {{"odd", odd}, {"big", big}, {"bf", big.slice(0, 0, 7).to(DType::bf16)}});
  SafetensorsContents mapped = read_safetensors(path);
  CHECK(mapped.memory_mapped);
  SafetensorsReadOptions never;
  never.mmap_threshold_bytes = std::numeric_limits<uint64_t>::max();
  SafetensorsContents read = read_safetensors(path, never);
  CHECK_FALSE(read.memory_mapped);
  SafetensorsReadOptions always;
  always.mmap_threshold_bytes = 0;
  SafetensorsContents small_mapped = read_safetensors(path, always);
  CHECK(small_mapped.memory_mapped);
  for (const char* name : {"odd", "big", "bf"}) {
    INFO(name);
    CHECK(mapped.at(name).to_vector() == read.at(name).to_vector());
    CHECK(small_mapped.at(name).to_vector() == read.at(name).to_vector());
  }
  CHECK(mapped.at("big").to_vector() == big.to_vector());
  // A malformed mapped file is rejected the same way (here: one byte cut off the end).
  std::string bytes = retort::test::read_bytes(path);
  write_bytes(path, bytes.substr(0, bytes.size() - 1));
  CHECK_THROWS_WITH_AS(read_safetensors(path, always), doctest::Contains("reach past the end of the file"), Error);
  CHECK_THROWS_WITH_AS(read_safetensors(dir.file("")), doctest::Contains("not a regular file"), Error);
}

TEST_CASE("safetensors: each defect class is rejected naming the file, the tensor and the reason") {
  TempDir dir("st_defects");
  const std::string e8(8, '\0');
  check_names(error_for(dir, le64(200'000'000) + "{}"), dir, "", "over the 100000000 byte limit");
  check_names(error_for(dir, st_file(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", e8)), dir, "w",
              "not a non-negative integer");
  check_names(error_for(dir, st_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", e8)), dir, "w",
              "not a non-negative integer");
  check_names(error_for(dir, st_file(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", e8)), dir, "w",
              "non-array \"shape\"");
  check_names(error_for(dir, st_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", e8)),
              dir, "w", "more elements than an int64 can count");
  check_names(error_for(dir, st_file(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})",
                                     e8.substr(0, 4))),
              dir, "w", "9 dims");
  check_names(error_for(dir, st_file(R"({"w":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", e8)), dir, "w",
              "valid safetensors but retort does not load it");
  check_names(error_for(dir, st_file(R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", e8)), dir, "w",
              "non-string \"dtype\"");
  check_names(error_for(dir, st_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})", e8)), dir, "w",
              "\"data_offsets\" must be");
  check_names(error_for(dir, st_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", e8)), dir, "w",
              "end before they begin");
  check_names(error_for(dir, st_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "")), dir, "w",
              "reach past the end of the file");
  check_names(error_for(dir, st_file(R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,8]}})", e8)), dir, "w",
              "cover 8 bytes but F16 [2] needs 4");
  check_names(error_for(dir, st_file(R"({"w":[1,2]})", "")), dir, "w", "entry must be an object");
  check_names(error_for(dir, st_file(R"({"__metadata__":[1]})", "")), dir, "", "\"__metadata__\" must be an object");
  // A number too large for a double was an uncaught nlohmann out_of_range (found by the fuzzer).
  check_names(error_for(dir, st_file(R"({"w":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})", e8.substr(0, 4))),
              dir, "", "header is not valid JSON");
  // Invalid UTF-8 inside a name.
  check_names(error_for(dir, st_file("{\"\xff\":{}}", "")), dir, "", "header is not valid JSON");
  // A hostile name is cut in the message.
  std::string long_name(5000, 'n');
  std::string msg = error_for(dir, st_file(R"({")" + long_name + R"(":1})", ""));
  check_names(msg, dir, "", "(5000 bytes)");
  CHECK(msg.size() < 1000);
  // "__metadata__": null is accepted (no metadata), as the reference implementation does.
  std::string ok = st_file(R"({"__metadata__":null,"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x");
  CHECK(parse_safetensors(ok.data(), ok.size(), "mem").metadata.empty());
  CHECK_THROWS_WITH_AS(parse_safetensors(ok.data(), 11, "in-memory bytes"), doctest::Contains("in-memory bytes: byte 0"), Error);
}

TEST_CASE("safetensors: a header with 100000 entries parses in header order (no quadratic parsing)") {
  // nlohmann's ordered_json and its callback parser both made this quadratic (200k entries took
  // 80 s); the reader now records the order in a SAX pass and parses into a std::map.
  std::string header = "{";
  const int n = 100000;
  for (int i = 0; i < n; ++i)
    header += fmt::format("{}\"t{}\":{{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[{},{}]}}", i ? "," : "",
                          n - 1 - i, i, i + 1);
  header += "}";
  std::string data(size_t(n), '\x05');
  std::string bytes = st_file(header, data);
  SafetensorsContents c = parse_safetensors(bytes.data(), bytes.size(), "many");
  REQUIRE(c.tensors.size() == size_t(n));
  CHECK(c.tensors.front().first == "t99999");  // header order, not name order
  CHECK(c.tensors.back().first == "t0");
  CHECK(c.at("t5").item() == 5.0);
}

TEST_CASE("safetensors: the fuzz corpus replays (every file loads or is rejected with a retort::Error)") {
  const std::filesystem::path corpus = retort::test::source_path("tests/fuzz_corpus/safetensors");
  REQUIRE(std::filesystem::is_directory(corpus));
  int files = 0, loaded = 0, rejected = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    const std::string name = entry.path().filename().string();
    INFO("corpus file " << name);
    try {
      SafetensorsContents c = read_safetensors(entry.path().string());
      ++loaded;
      CHECK(name.rfind("bad_", 0) != 0);  // the hand-made invalid seeds must not load
    } catch (const Error& e) {
      ++rejected;
      CHECK(name.rfind("valid_", 0) != 0);  // the hand-made valid seeds must load
      CHECK(std::string(e.what()).find(entry.path().string()) != std::string::npos);
    }
  }
  CHECK(files >= 20);
  CHECK(loaded >= 4);
  CHECK(rejected >= 16);
}
