// Data parallelism's pieces, in one process: the rank-ordered sum, SyncBN against BatchNorm on
// the whole batch (f64, ranks as threads), Dropout's per-slice draws, the loader's slices, and
// the checks that refuse a stage before it trains. The multi-process equivalence tests run
// through mpirun in tests/dist/test_data_parallel.py.
#include <barrier>
#include <thread>
#include "engine/data/batch.h"
#include "engine/dist/communicator.h"
#include "engine/dist/nccl.h"
#include "engine/dist/shard.h"
#include "engine/dist/sync_batch_norm.h"
#include "engine/nn/layers.h"
#include "helpers.h"

namespace retort::test {
namespace {

// N ranks as N threads of this process: a shared slot per rank, and a barrier.
class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : slots_(size_t(n)), sync_(n) {}
  class Rank final : public dist::Communicator {
   public:
    Rank(ThreadGroup& g, int r) : g_(g), r_(r) {}
    std::string backend() const override { return "threads"; }
    int rank() const override { return r_; }
    int size() const override { return int(g_.slots_.size()); }
    int local_rank() const override { return r_; }
    void allgather_bytes(const void* send, void* recv, size_t bytes) override {
      const auto* p = static_cast<const unsigned char*>(send);
      g_.slots_[size_t(r_)].assign(p, p + bytes);
      g_.sync_.arrive_and_wait();
      for (size_t i = 0; i < g_.slots_.size(); ++i)
        std::memcpy(static_cast<unsigned char*>(recv) + i * bytes, g_.slots_[i].data(), bytes);
      g_.sync_.arrive_and_wait();
    }
    void broadcast_bytes(void* data, size_t bytes, int root) override {
      std::vector<unsigned char> all(bytes * g_.slots_.size());
      allgather_bytes(data, all.data(), bytes);
      std::memcpy(data, all.data() + size_t(root) * bytes, bytes);
    }
    void barrier() override { g_.sync_.arrive_and_wait(); }
    [[noreturn]] void abort(const std::string& why) override { FAIL(why); std::abort(); }

   private:
    ThreadGroup& g_;
    int r_;
  };
  // Runs body(rank communicator) on every rank, each in its own thread.
  void run(const std::function<void(Rank&)>& body) {
    std::vector<std::thread> threads;
    for (int r = 0; r < int(slots_.size()); ++r)
      threads.emplace_back([this, r, &body] {
        Rank comm(*this, r);
        body(comm);
      });
    for (auto& t : threads) t.join();
  }

 private:
  std::vector<std::vector<unsigned char>> slots_;
  std::barrier<> sync_;
};

}  // namespace

TEST_CASE("data parallel: the rank-ordered sum adds the parts in rank order, the same on every rank") {
  // 1e8 + 1 - 1e8 in f32 depends on the order; the rank order is the one used everywhere.
  const std::vector<float> parts = {1e8f, 2.0f, 1.0f, 3.0f, -1e8f, 4.0f};  // 3 ranks x 2 values, rank-major
  std::vector<float> out(2);
  dist::sum_in_rank_order(parts.data(), 3, 2, out.data());
  CHECK(out[0] == 0.0f);  // (1e8 + 1) - 1e8 in f32; another order, (1e8 - 1e8) + 1, gives 1
  CHECK(out[1] == ((2.0f + 3.0f) + 4.0f));
  ThreadGroup group(3);
  std::vector<std::vector<double>> seen(3);
  group.run([&](ThreadGroup::Rank& comm) {
    Tensor t = Tensor::from_vector({double(comm.rank()) + 0.25, 1e16 * (comm.rank() == 1 ? -1 : 1)}, {2}, DType::f64);
    comm.allreduce_sum(t);
    seen[size_t(comm.rank())] = t.to_vector();
  });
  CHECK(seen[0] == std::vector<double>{0.25 + 1.25 + 2.25, (1e16 + -1e16) + 1e16});
  CHECK(seen[1] == seen[0]);
  CHECK(seen[2] == seen[0]);
}

TEST_CASE("data parallel: the collective watchdog is one thread, however many collectives it watches") {
  auto threads = [] { return std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                                           std::filesystem::directory_iterator()); };
  { dist::CollectiveWatch first("first"); }
  const auto before = threads();
  for (int i = 0; i < 200; ++i) dist::CollectiveWatch watch("test");
  CHECK(threads() == before);
}

TEST_CASE("data parallel: SyncBN over 4 ranks equals batch_norm2d on the whole batch (f64: outputs, gradients, running stats)") {
  const int ranks = 4;
  const Tensor x = random_tensor({8, 3, 5, 4}, 11, -2.0, 3.0);
  const Tensor up = random_tensor({8, 3, 5, 4}, 12);  // d loss / d y
  const Tensor w0 = random_tensor({3}, 13, 0.5, 1.5), b0 = random_tensor({3}, 14);
  const Tensor rm0 = random_tensor({3}, 15), rv0 = random_tensor({3}, 16, 0.5, 2.0);

  Tensor xf = x.clone().requires_grad_(true), wf = w0.clone().requires_grad_(true), bf = b0.clone().requires_grad_(true);
  Tensor rmf = rm0.clone(), rvf = rv0.clone();
  Tensor yf = batch_norm2d(xf, wf, bf, rmf, rvf, true, 0.1, 1e-5);
  sum(mul(yf, up)).backward();

  std::vector<Tensor> ys(ranks), dxs(ranks), dws(ranks), dbs(ranks), rms(ranks), rvs(ranks);
  ThreadGroup group(ranks);
  group.run([&](ThreadGroup::Rank& comm) {
    const int r = comm.rank();
    Tensor xs = x.slice(0, 2 * r, 2 * r + 2).contiguous().requires_grad_(true);
    Tensor w = w0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
    Tensor rm = rm0.clone(), rv = rv0.clone();
    Tensor y = dist::sync_batch_norm2d(xs, w, b, rm, rv, 0.1, 1e-5, comm);
    sum(mul(y, up.slice(0, 2 * r, 2 * r + 2))).backward();
    ys[size_t(r)] = y.detach();
    dxs[size_t(r)] = xs.grad();
    dws[size_t(r)] = w.grad();
    dbs[size_t(r)] = b.grad();
    rms[size_t(r)] = rm;
    rvs[size_t(r)] = rv;
  });
  CHECK(max_rel_error(concat(ys, 0), yf.detach()) < 1e-12);
  CHECK(max_rel_error(concat(dxs, 0), xf.grad()) < 1e-12);
  // Each rank's dw and db are its own slice's; summed over the ranks (the gradient all-reduce) they are the batch's.
  CHECK(max_rel_error(add(add(dws[0], dws[1]), add(dws[2], dws[3])), wf.grad()) < 1e-12);
  CHECK(max_rel_error(add(add(dbs[0], dbs[1]), add(dbs[2], dbs[3])), bf.grad()) < 1e-12);
  for (int r = 0; r < ranks; ++r) {
    CHECK(max_rel_error(rms[size_t(r)], rmf) < 1e-12);
    CHECK(max_rel_error(rvs[size_t(r)], rvf) < 1e-12);
  }
}

TEST_CASE("data parallel: SyncBN given the global batch's rows reads nothing back and gives the same bits") {
  const int ranks = 2;
  const Tensor x = random_tensor({6, 3, 4, 4}, 41, -2.0, 3.0, DType::f32);
  auto run = [&](int64_t global_rows, std::vector<Tensor>& ys, std::vector<Tensor>& rvs) {
    ys.assign(ranks, Tensor());
    rvs.assign(ranks, Tensor());
    const int64_t reads_before = host_read_count();
    ThreadGroup group(ranks);
    group.run([&](ThreadGroup::Rank& comm) {
      const int r = comm.rank();
      Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
      ys[size_t(r)] = dist::sync_batch_norm2d(x.slice(0, 3 * r, 3 * r + 3).contiguous(), Tensor(), Tensor(), rm, rv,
                                              0.1, 1e-5, comm, global_rows);
      rvs[size_t(r)] = rv;
    });
    return host_read_count() - reads_before;
  };
  std::vector<Tensor> y_read, rv_read, y_given, rv_given;
  const int64_t reads_without = run(0, y_read, rv_read);
  const int64_t reads_with = run(6, y_given, rv_given);
  CHECK(reads_without - reads_with == ranks);  // one read of the count per rank, gone
  for (int r = 0; r < ranks; ++r) {
    CHECK(same_bits(y_given[size_t(r)], y_read[size_t(r)]));
    CHECK(same_bits(rv_given[size_t(r)], rv_read[size_t(r)]));  // the unbiased variance uses the count
  }
}

TEST_CASE("data parallel: SyncBN's backward passes the f64 finite-difference check on one rank") {
  ThreadGroup group(1);
  group.run([&](ThreadGroup::Rank& comm) {
    const Tensor w = random_tensor({2}, 22, 0.5, 1.5), b = random_tensor({2}, 23);
    auto f = [&](const std::vector<Tensor>& in) {
      return dist::sync_batch_norm2d(in[0], in[1], in[2], Tensor(), Tensor(), 0.1, 1e-5, comm);
    };
    gradcheck(f, {random_tensor({3, 2, 3, 3}, 21), w, b});
  });
}

TEST_CASE("data parallel: a Dropout slice draws the mask elements the whole batch draws for it") {
  const Tensor x = random_tensor({8, 6}, 31, 0.5, 1.5, DType::f32);
  Generator g(77);
  nn::Dropout whole(0.5, g);
  whole.train(true);
  const Tensor full = whole.forward(x);
  for (int index = 0; index < 4; ++index) {
    Generator g2(77);
    nn::Dropout part(0.5, g2);
    part.train(true);
    dist::ShardScope scope({index, 4, nullptr, false});
    const Tensor y = part.forward(x.slice(0, 2 * index, 2 * index + 2).contiguous());
    CHECK(same_bits(y, full.slice(0, 2 * index, 2 * index + 2)));
    CHECK(part.generator().offset() == whole.generator().offset());  // moved on by the whole batch
  }
}

TEST_CASE("data parallel: a batch's slices are its contiguous rows, labels and positions with them") {
  data::Batch b;
  b.batch = 6;
  b.channels = 1;
  b.height = b.width = 2;
  for (int i = 0; i < 24; ++i) b.images.push_back(float(i));
  b.labels = {0, 1, 2, 3, 4, 5};
  b.positions = {10, 11, 12, 13, 14, 15};
  const data::Batch s = b.slice(2, 5);
  CHECK(s.batch == 3);
  CHECK(s.images.front() == 8.0f);
  CHECK(s.images.back() == 19.0f);
  CHECK(s.labels == std::vector<int64_t>{2, 3, 4});
  CHECK(s.positions == std::vector<int64_t>{12, 13, 14});
  CHECK(b.whole_batch == 0);  // not a slice
  CHECK(s.whole_batch == 6);  // the rows SyncBN counts over the ranks
  CHECK(s.slice(0, 1).whole_batch == 6);
  CHECK_THROWS_WITH_AS(b.slice(4, 7), doctest::Contains("rows [4, 7) of a batch of 6"), Error);
}

}  // namespace retort::test

namespace retort::test {
TEST_SUITE("gpu") {

TEST_CASE("data parallel, cuda: NCCL with one rank sums and broadcasts device tensors in place") {
  if (skip_without_gpu("NCCL with one rank")) return;
  const Device gpu = resolve_device("cuda");
  std::string why;
  auto nccl = dist::make_nccl_communicator(dist::world(), gpu.index, why);
  REQUIRE_MESSAGE(nccl, why);
  CHECK(nccl->backend() == "nccl");
  const Tensor host = random_tensor({1000}, 41, -1.0, 1.0, DType::f32);
  Tensor t = host.to(gpu);
  nccl->allreduce_sum(t);  // one rank: the sum is the tensor itself
  CHECK(same_bits(t.to(Device::cpu()), host));
  nccl->broadcast(t, 0);
  CHECK(same_bits(t.to(Device::cpu()), host));
}

TEST_CASE("data parallel, cuda: two ranks sharing one GPU reduce through host copies; SyncBN runs on it") {
  if (skip_without_gpu("two ranks on one GPU")) return;
  const Device gpu = resolve_device("cuda");
  const Tensor x = random_tensor({8, 3, 5, 4}, 51, -2.0, 3.0, DType::f32);
  const Tensor up = random_tensor({8, 3, 5, 4}, 52, -1.0, 1.0, DType::f32);
  Tensor xf = x.to(gpu).requires_grad_(true);
  Tensor yf = batch_norm2d(xf, Tensor(), Tensor(), Tensor(), Tensor(), true);
  sum(mul(yf, up.to(gpu))).backward();
  std::vector<Tensor> sums(2), ys(2), dxs(2);
  std::vector<std::string> refusals(2);
  ThreadGroup group(2);
  group.run([&](ThreadGroup::Rank& comm) {
    const int r = comm.rank();
    std::string why;
    CHECK(dist::make_nccl_communicator(comm, gpu.index, why) == nullptr);  // one GPU, two ranks: no NCCL
    refusals[size_t(r)] = why;
    Tensor t = Tensor::full({4}, double(r + 1), DType::f32, gpu);
    comm.allreduce_sum(t);  // the host-copy path
    sums[size_t(r)] = t.to(Device::cpu());
    Tensor xs = x.slice(0, 4 * r, 4 * r + 4).contiguous().to(gpu).requires_grad_(true);
    Tensor y = dist::sync_batch_norm2d(xs, Tensor(), Tensor(), Tensor(), Tensor(), 0.1, 1e-5, comm);
    sum(mul(y, up.slice(0, 4 * r, 4 * r + 4).contiguous().to(gpu))).backward();
    ys[size_t(r)] = y.detach().to(Device::cpu());
    dxs[size_t(r)] = xs.grad().to(Device::cpu());
  });
  CHECK(refusals[0].find("share GPU") != std::string::npos);
  check_close(sums[0], {3, 3, 3, 3}, 0);
  check_close(sums[1], {3, 3, 3, 3}, 0);
  CHECK(max_rel_error(concat(ys, 0), yf.detach().to(Device::cpu())) < 1e-5);
  CHECK(max_rel_error(concat(dxs, 0), xf.grad().to(Device::cpu())) < 1e-5);
}

}  // TEST_SUITE("gpu")
}  // namespace retort::test
