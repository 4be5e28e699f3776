// safetensors: round trips for every dtype, a hand-made file, every corrupt case (the error
// names the file and the byte), and atomic writes that leave the old file and no temp behind.
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "io/temp_dir.h"

using namespace retort;
using retort::test::random_tensor;
using retort::test::same_bits;
using retort::test::read_bytes;
using retort::test::TempDir;
using retort::test::write_bytes;

namespace {
std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}
// A safetensors file: 8-byte little-endian header length, the header text, the data bytes.
std::string st_file(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

// Reads `bytes` written to a file and checks the error names the file, "byte <at>" and `what`.
void expect_corrupt(const TempDir& dir, const std::string& bytes, uint64_t at, const std::string& what) {
  std::string path = dir.file("corrupt.safetensors");
  write_bytes(path, bytes);
  INFO("expected: byte " << at << ": " << what);
  try {
    read_safetensors(path);
    FAIL("no error for a corrupt file");
  } catch (const Error& e) {
    std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("byte " + std::to_string(at) + ":") != std::string::npos);
    CHECK(msg.find(what) != std::string::npos);
  }
}
}  // namespace

TEST_CASE("safetensors: round trip of every dtype, a 0-d, an empty and a strided tensor") {
  TempDir dir("st_roundtrip");
  Tensor f32 = random_tensor({3, 5}, 1, -2, 2, DType::f32);
  Tensor f64 = random_tensor({2, 3, 4}, 2, -2, 2, DType::f64);
  Tensor bf = random_tensor({7}, 3, -2, 2, DType::bf16);
  Tensor i64 = Tensor::from_i64({std::numeric_limits<int64_t>::min(), -7, 3, std::numeric_limits<int64_t>::max()}, {2, 2});
  Tensor u8 = Tensor::from_vector({0, 1, 128, 255, 7}, {5}, DType::u8);
  Tensor scalar = Tensor::scalar(3.5, DType::f32);
  Tensor empty = Tensor::zeros({0, 3}, DType::f64);
  Tensor strided = random_tensor({4, 3}, 4, -1, 1, DType::f32).transpose(0, 1);
  NamedTensors in = {{"layer.weight", f32}, {"f64", f64}, {"bf16", bf}, {"i64", i64}, {"u8", u8},
                     {"scalar", scalar}, {"empty", empty}, {"strided", strided}};
  StringMap meta = {{"step", "12"}, {"note", "k\u00e9y \"quoted\""}};
  std::string path = dir.file("all.safetensors");
  write_safetensors(path, in, meta);

  SafetensorsContents out = read_safetensors(path);
  CHECK(out.metadata == meta);
  REQUIRE(out.tensors.size() == in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    INFO(in[i].first);
    CHECK(out.tensors[i].first == in[i].first);  // order kept
    CHECK(out.tensors[i].second.device().is_cpu());
    CHECK(same_bits(out.tensors[i].second, in[i].second));
  }
  CHECK(out.at("scalar").dim() == 0);
  CHECK(out.at("scalar").item() == 3.5);
  CHECK(out.at("i64").to_i64_vector() ==
        std::vector<int64_t>{std::numeric_limits<int64_t>::min(), -7, 3, std::numeric_limits<int64_t>::max()});
  CHECK(out.at("u8").to_vector() == std::vector<double>{0, 1, 128, 255, 7});
  CHECK(out.at("empty").shape() == Shape{0, 3});
  CHECK(out.contains("f64"));
  CHECK_FALSE(out.contains("nope"));
  CHECK_THROWS_WITH_AS(out.at("nope"), doctest::Contains("no tensor named 'nope'"), Error);
}

TEST_CASE("safetensors: a hand-written file reads back exactly") {
  TempDir dir("st_hand");
  // F32 [2] = [1.0, -2.0]: 1.0f is 0x3f800000, -2.0f is 0xc0000000, stored little-endian.
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"who":"hand"}})";
  std::string data("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);
  std::string path = dir.file("hand.safetensors");
  write_bytes(path, st_file(header, data));
  SafetensorsContents c = read_safetensors(path);
  REQUIRE(c.tensors.size() == 1);
  CHECK(c.tensors[0].first == "x");
  CHECK(c.at("x").dtype() == DType::f32);
  CHECK(c.at("x").shape() == Shape{2});
  CHECK(c.at("x").to_vector() == std::vector<double>{1.0, -2.0});
  CHECK(c.metadata == StringMap{{"who", "hand"}});
}

TEST_CASE("safetensors: the writer's bytes follow the format") {
  TempDir dir("st_bytes");
  std::string path = dir.file("w.safetensors");
  write_safetensors(path, {{"x", Tensor::from_vector({1.0, -2.0}, {2})}}, {{"k", "v"}});
  std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 16);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[size_t(i)]);
  CHECK(n % 8 == 0);  // padded with spaces so the data is 8-byte aligned
  REQUIRE(bytes.size() == 8 + n + 8);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  CHECK(header["x"]["dtype"] == "F32");
  CHECK(header["x"]["shape"] == nlohmann::json::array({2}));
  CHECK(header["x"]["data_offsets"] == nlohmann::json::array({0, 8}));
  CHECK(header["__metadata__"]["k"] == "v");
  CHECK(bytes.substr(8 + n) == std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8));
}

TEST_CASE("safetensors: every corrupt file names the file and the byte") {
  TempDir dir("st_corrupt");
  const std::string x2 = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string eight(8, '\x01');
  auto data_start = [](const std::string& header) { return 8 + header.size(); };

  expect_corrupt(dir, "abc", 0, "shorter than the 8-byte header length");
  expect_corrupt(dir, le64(1000) + "{}", 0, "header length 1000 is larger");
  // JSON error: the second ',' is at header position 8, so file byte 16.
  expect_corrupt(dir, st_file(R"({"x": 1,, })", ""), 16, "header is not valid JSON");
  expect_corrupt(dir, st_file("[1, 2]", ""), 8, "not an object");
  // Entry errors point at the entry's name: '"x"' starts at header position 1, byte 9.
  expect_corrupt(dir, st_file(R"({"x":{"dtype":"F17","shape":[2],"data_offsets":[0,4]}})", "1234"), 9,
                 "unknown dtype \"F17\"");
  expect_corrupt(dir, st_file(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight), 9,
                 "not a non-negative integer");
  expect_corrupt(dir, st_file(R"({"x":{"dtype":"F32","shape":[2]}})", eight), 9, "\"data_offsets\" must be");
  expect_corrupt(dir, st_file(R"({"__metadata__":{"k":1}})", ""), 25, "metadata value of 'k' must be a string");
  {  // offsets past the end of the file: reported at the tensor's begin
    std::string h = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
    expect_corrupt(dir, st_file(h, eight), data_start(h) + 4, "reach past the end of the file");
  }
  {  // size does not match shape * dtype size
    std::string h = R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
    expect_corrupt(dir, st_file(h, eight), data_start(h), "cover 8 bytes but F32 [3] needs 12");
  }
  {  // overlap
    std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
    expect_corrupt(dir, st_file(h, std::string(12, '\x01')), data_start(h) + 4, "overlaps tensor 'a'");
  }
  {  // hole between tensors
    std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})";
    expect_corrupt(dir, st_file(h, std::string(20, '\x01')), data_start(h) + 8, "4 bytes before tensor 'b' belong to no tensor");
  }
  {  // a name used twice: reported where it appears the second time
    std::string h = R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})";
    expect_corrupt(dir, st_file(h, "ab"), 8 + h.find("\"x\"", 2), "the name 'x' appears twice");
  }
  // trailing garbage after a valid tensor
  expect_corrupt(dir, st_file(x2, eight + "junk"), data_start(x2) + 8, "4 bytes of trailing data");
  // the same file without the junk is fine
  write_bytes(dir.file("ok.safetensors"), st_file(x2, eight));
  CHECK(read_safetensors(dir.file("ok.safetensors")).at("x").numel() == 2);
  CHECK_THROWS_WITH_AS(read_safetensors(dir.file("missing.safetensors")), doctest::Contains("cannot open"), Error);
}

TEST_CASE("safetensors: a failing write leaves the previous file and no temp file") {
  TempDir dir("st_atomic");
  std::string path = dir.file("model.safetensors");
  NamedTensors v1 = {{"w", Tensor::from_vector({1, 2, 3}, {3})}};
  write_safetensors(path, v1, {{"version", "1"}});
  const std::string before = read_bytes(path);
  NamedTensors v2 = {{"w", Tensor::from_vector({4, 5, 6}, {3})}, {"b", Tensor::ones({100})}};
  auto check_untouched = [&] {
    CHECK(read_bytes(path) == before);
    CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
    CHECK(read_safetensors(path).at("w").to_vector() == std::vector<double>{1, 2, 3});
  };

  SUBCASE("I/O error half-way (simulated full disk)") {
    testing::fail_next_safetensors_write_after(100);
    CHECK_THROWS_WITH_AS(write_safetensors(path, v2), doctest::Contains("injected fault"), Error);
    check_untouched();
    write_safetensors(path, v2);  // the fault was one-shot: the next write succeeds
    CHECK(read_safetensors(path).at("w").to_vector() == std::vector<double>{4, 5, 6});
  }
  SUBCASE("a tensor that throws (undefined)") {
    NamedTensors bad = v2;
    bad.emplace_back("broken", Tensor());
    CHECK_THROWS_WITH_AS(write_safetensors(path, bad), doctest::Contains("'broken' is undefined"), Error);
    check_untouched();
  }
  SUBCASE("duplicate and reserved names") {
    CHECK_THROWS_WITH_AS(write_safetensors(path, {{"w", Tensor::ones({1})}, {"w", Tensor::ones({1})}}),
                         doctest::Contains("used twice"), Error);
    CHECK_THROWS_WITH_AS(write_safetensors(path, {{"__metadata__", Tensor::ones({1})}}), doctest::Contains("reserved"),
                         Error);
    check_untouched();
  }
  SUBCASE("the rename fails (the target is a directory)") {
    std::string target = dir.file("adir");
    std::filesystem::create_directory(target);
    write_bytes(target + "/inside", "keep");
    CHECK_THROWS_WITH_AS(write_safetensors(target, v2), doctest::Contains("renaming"), Error);
    CHECK(read_bytes(target + "/inside") == "keep");
    std::filesystem::remove_all(target);
    check_untouched();
  }
  SUBCASE("the directory does not exist") {
    CHECK_THROWS_WITH_AS(write_safetensors(dir.file("no/such/dir/x.safetensors"), v2),
                         doctest::Contains("cannot create the temp file"), Error);
    check_untouched();
  }
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: safetensors writes device tensors") {
  RETORT_REQUIRE_GPU();
  TempDir dir("st_gpu");
  Tensor host = random_tensor({5, 3}, 9, -1, 1, DType::f32);
  write_safetensors(dir.file("gpu.safetensors"), {{"x", host.to(Device::cuda())}});
  CHECK(same_bits(read_safetensors(dir.file("gpu.safetensors")).at("x"), host));
}
}
