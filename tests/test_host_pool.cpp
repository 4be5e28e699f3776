// The host memory pool (engine/host_pool): freed large blocks come back for the same size,
// small ones bypass it, the limit evicts the least recently freed, a reused block is never
// assumed to be zero, and concurrent use keeps the books straight.
#include <doctest/doctest.h>
#include <algorithm>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>
#include "engine/host_pool.h"
#include "engine/retort.h"

using namespace retort;

namespace {
constexpr size_t kBig = size_t(1) << 20;  // above kMinPooledBytes

// Runs the test with the given limit and an empty cache, then restores the limit it found.
struct PoolScope {
  size_t saved = host_pool::stats().limit_bytes;
  explicit PoolScope(size_t limit) {
    host_pool::empty();
    host_pool::set_limit(limit);
  }
  ~PoolScope() {
    host_pool::empty();
    host_pool::set_limit(saved);
  }
};
bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }
}  // namespace

TEST_CASE("host pool: a freed large block is handed out again for the same size") {
  PoolScope scope(size_t(64) << 20);
  const auto before = host_pool::stats();
  void* a = host_pool::allocate(kBig + 100);
  CHECK(aligned64(a));
  host_pool::release(a, kBig + 100);
  CHECK(host_pool::stats().cached_blocks == 1);
  CHECK(host_pool::stats().cached_bytes == kBig + 4096);  // rounded up to 4 KiB
  void* b = host_pool::allocate(kBig + 200);                // the same 4 KiB class
  CHECK(b == a);
  CHECK(host_pool::stats().hits == before.hits + 1);
  CHECK(host_pool::stats().cached_blocks == 0);
  void* c = host_pool::allocate(2 * kBig);  // another size: a fresh block
  CHECK(c != b);
  CHECK(host_pool::stats().misses == before.misses + 2);
  host_pool::release(b, kBig + 200);
  host_pool::release(c, 2 * kBig);
  CHECK(host_pool::stats().cached_blocks == 2);
  host_pool::empty();
  CHECK(host_pool::stats().cached_blocks == 0);
  CHECK(host_pool::stats().cached_bytes == 0);
}

TEST_CASE("host pool: small blocks bypass the cache") {
  PoolScope scope(size_t(64) << 20);
  const auto before = host_pool::stats();
  void* p = host_pool::allocate(1000);
  CHECK(aligned64(p));
  host_pool::release(p, 1000);
  const auto after = host_pool::stats();
  CHECK(after.cached_blocks == 0);
  CHECK(after.hits == before.hits);
  CHECK(after.misses == before.misses);
}

TEST_CASE("host pool: past its limit the cache lets the least recently freed blocks go") {
  PoolScope scope(3 * kBig);
  void* a = host_pool::allocate(kBig);
  void* b = host_pool::allocate(kBig);
  void* c = host_pool::allocate(kBig);
  void* d = host_pool::allocate(kBig);
  host_pool::release(a, kBig);
  host_pool::release(b, kBig);
  host_pool::release(c, kBig);
  CHECK(host_pool::stats().cached_bytes == 3 * kBig);
  host_pool::release(d, kBig);  // a, the oldest, is freed
  CHECK(host_pool::stats().cached_bytes == 3 * kBig);
  CHECK(host_pool::stats().cached_blocks == 3);
  std::vector<void*> back;
  for (int i = 0; i < 3; ++i) back.push_back(host_pool::allocate(kBig));
  CHECK(std::find(back.begin(), back.end(), b) != back.end());
  CHECK(std::find(back.begin(), back.end(), c) != back.end());
  CHECK(std::find(back.begin(), back.end(), d) != back.end());
  for (void* p : back) host_pool::release(p, kBig);

  host_pool::set_limit(kBig);  // lowering the limit frees what is above it at once
  CHECK(host_pool::stats().cached_bytes == kBig);
  void* big = host_pool::allocate(2 * kBig);
  host_pool::release(big, 2 * kBig);  // larger than the whole limit: freed, not cached
  CHECK(host_pool::stats().cached_bytes == kBig);
  host_pool::set_limit(0);  // caching off
  CHECK(host_pool::stats().cached_blocks == 0);
  void* e = host_pool::allocate(kBig);
  host_pool::release(e, kBig);
  CHECK(host_pool::stats().cached_blocks == 0);
}

TEST_CASE("host pool: a tensor on a reused block starts from its own values, not the last one's") {
  PoolScope scope(size_t(64) << 20);
  const int64_t n = int64_t(kBig / sizeof(float));
  {
    Tensor dirty = Tensor::full({n}, 7.0f);
    CHECK(dirty.to_vector()[size_t(n) - 1] == 7.0);
  }
  const auto hits = host_pool::stats().hits;
  Tensor z = Tensor::zeros({n});
  CHECK(host_pool::stats().hits == hits + 1);  // the freed block came back
  const auto v = z.to_vector();
  CHECK(std::all_of(v.begin(), v.end(), [](double x) { return x == 0.0; }));
  Generator gen(3);
  Tensor r = randn({n}, gen);  // another block; random, so a stale value would show
  Tensor s = add(z, r);
  CHECK(s.to_vector() == r.to_vector());
}

TEST_CASE("host pool: threads allocating and freeing at once keep the books straight") {
  PoolScope scope(size_t(16) << 20);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      std::mt19937 rng{unsigned(t)};
      std::vector<std::pair<void*, size_t>> held;
      for (int i = 0; i < 2000; ++i) {
        if (held.size() < 8 && rng() % 2) {
          const size_t bytes = kBig / 4 * (1 + rng() % 6);
          auto* p = static_cast<unsigned char*>(host_pool::allocate(bytes));
          p[0] = p[bytes - 1] = static_cast<unsigned char>(t);  // the whole block is ours
          held.emplace_back(p, bytes);
        } else if (!held.empty()) {
          auto [p, bytes] = held.back();
          held.pop_back();
          auto* c = static_cast<unsigned char*>(p);
          CHECK((c[0] == t && c[bytes - 1] == t));  // nobody else wrote to it
          host_pool::release(p, bytes);
        }
      }
      for (auto [p, bytes] : held) host_pool::release(p, bytes);
    });
  for (auto& th : threads) th.join();
  const auto s = host_pool::stats();
  CHECK(s.cached_bytes <= s.limit_bytes);
  CHECK(s.cached_bytes > 0);
  CHECK(s.hits > 0);
}

TEST_CASE("host pool: RETORT_HOST_POOL_MB takes whole megabytes and names itself when it cannot") {
  CHECK(host_pool::parse_limit_mb("0") == 0);
  CHECK(host_pool::parse_limit_mb("512") == size_t(512) << 20);
  for (const char* bad : {"", "-1", "1.5", "64MB", "abc", "99999999999999999999"})
    CHECK_THROWS_WITH_AS(host_pool::parse_limit_mb(bad), doctest::Contains("RETORT_HOST_POOL_MB must be a whole number"),
                         Error);
}
