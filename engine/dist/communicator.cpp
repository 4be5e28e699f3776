// The single-process communicator, the process's current communicator, tensor collectives
// over the byte collectives, and the collective watchdog (see engine/dist/communicator.h).
#include "engine/dist/communicator.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include "engine/error.h"

namespace retort::dist {
namespace {

class SingleProcess final : public Communicator {
 public:
  std::string backend() const override { return "single"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  void allgather_bytes(const void* send, void* recv, size_t bytes) override {
    if (bytes) std::memcpy(recv, send, bytes);
  }
  void broadcast_bytes(void*, size_t, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(const std::string& why) override {
    std::fprintf(stderr, "[retort] %s\n", why.c_str());
    std::exit(1);
  }
};

std::unique_ptr<Communicator>& world_slot() {
  static std::unique_ptr<Communicator> comm = std::make_unique<SingleProcess>();
  return comm;
}

void check_reducible(const Tensor& t, const char* op) {
  RETORT_CHECK(t.defined() && t.is_contiguous(), "{}: the tensor must be defined and contiguous", op);
  RETORT_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, "{}: only f32 and f64 tensors, got {}", op, t.str());
}

// ---- the watchdog: one thread, the armed collectives of every thread, checked twice a second

using Clock = std::chrono::steady_clock;

struct Watchdog {
  std::mutex mutex;
  std::map<std::thread::id, std::pair<const char*, Clock::time_point>> armed;
  bool started = false;  // the watching thread runs (detached) once started
  double timeout_s = -1;  // < 0: not read from the environment yet

  void arm(const char* what) {
    std::lock_guard<std::mutex> lock(mutex);
    if (limit() <= 0) return;
    armed[std::this_thread::get_id()] = {what, Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                                  std::chrono::duration<double>(limit()))};
    if (!started) {
      std::thread([this] { watch(); }).detach();
      started = true;
    }
  }
  void disarm() {
    std::lock_guard<std::mutex> lock(mutex);
    armed.erase(std::this_thread::get_id());
  }
  double limit() {
    if (timeout_s < 0) {
      const char* env = std::getenv("RETORT_DIST_TIMEOUT_S");
      timeout_s = env && *env ? std::atof(env) : 300.0;
    }
    return timeout_s;
  }
  [[noreturn]] void watch() {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      std::lock_guard<std::mutex> lock(mutex);
      for (const auto& [id, entry] : armed)
        if (Clock::now() > entry.second) {
          std::fprintf(stderr,
                       "[retort] %s: the collective '%s' did not finish within %.0f s: another rank is hung or has "
                       "died; ending this rank so the job does not hang\n",
                       world().where().c_str(), entry.first, timeout_s);
          std::fflush(stderr);
          std::_Exit(124);  // mpirun sees a rank end without MPI_Finalize and ends the others
        }
    }
  }
};

Watchdog& watchdog() {
  static Watchdog* w = new Watchdog;  // never destroyed: its thread may outlive static destruction
  return *w;
}

}  // namespace

std::string Communicator::where() const { return fmt::format("rank {} of {}", rank(), size()); }

void Communicator::allreduce_sum(Tensor& t) {
  check_reducible(t, "allreduce_sum");
  if (size() == 1) return;
  Tensor host = t.device().is_cpu() ? t : t.to(Device::cpu());
  const size_t bytes = host.nbytes();
  std::vector<unsigned char> gathered(bytes * size_t(size()));
  allgather_bytes(host.raw_data(), gathered.data(), bytes);
  const size_t n = size_t(host.numel());
  if (host.dtype() == DType::f32)
    sum_in_rank_order(reinterpret_cast<const float*>(gathered.data()), size(), n, static_cast<float*>(host.raw_data()));
  else
    sum_in_rank_order(reinterpret_cast<const double*>(gathered.data()), size(), n, static_cast<double*>(host.raw_data()));
  if (!t.device().is_cpu()) t.copy_(host);
}

void Communicator::broadcast(Tensor& t, int root) {
  RETORT_CHECK(t.defined() && t.is_contiguous(), "broadcast: the tensor must be defined and contiguous");
  if (size() == 1) return;
  Tensor host = t.device().is_cpu() ? t : t.to(Device::cpu());
  broadcast_bytes(host.raw_data(), host.nbytes(), root);
  if (!t.device().is_cpu()) t.copy_(host);
}

std::string broadcast_string(Communicator& comm, const std::string& s, int root) {
  if (comm.size() == 1) return s;
  uint64_t n = s.size();
  comm.broadcast_bytes(&n, sizeof(n), root);
  std::string out = comm.rank() == root ? s : std::string(size_t(n), '\0');
  if (n) comm.broadcast_bytes(out.data(), size_t(n), root);
  return out;
}

Communicator& world() { return *world_slot(); }

void set_world(std::unique_ptr<Communicator> comm) {
  world_slot() = comm ? std::move(comm) : std::make_unique<SingleProcess>();
}

CollectiveWatch::CollectiveWatch(const char* what) { watchdog().arm(what); }
CollectiveWatch::~CollectiveWatch() { watchdog().disarm(); }

}  // namespace retort::dist
