// The data-parallel communicator: which rank of how many this process is, and the collectives
// the trainer and SyncBN need. Backends:
//   single: one process (the default; every collective is the identity),
//   mpi:    Open MPI, host buffers, launched by `mpirun -np N retort ...`; its sums are
//           rank-ordered (every rank adds the ranks' values 0, 1, ..., N-1 in that order), so
//           results are bitwise reproducible and identical on every rank,
//   nccl:   NCCL for device tensors, its unique id broadcast over MPI, the GPU picked by the
//           local rank (engine/dist/nccl_communicator.cpp, CUDA builds only).
// Every collective is watched: one that does not finish within the timeout (a rank hung or
// died) ends this process with a message naming the collective, so a job never hangs forever.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>
#include "engine/tensor.h"

namespace retort::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string backend() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // among this node's processes (picks the GPU)

  // Every rank's `bytes` bytes of `send`, in rank order, into `recv` (size() * bytes).
  virtual void allgather_bytes(const void* send, void* recv, size_t bytes) = 0;
  // Root's `bytes` bytes of `data` onto every rank.
  virtual void broadcast_bytes(void* data, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends the whole job (every rank) after printing `why`; never returns.
  [[noreturn]] virtual void abort(const std::string& why) = 0;

  // Sums a contiguous f32 or f64 tensor over the ranks in place, rank-ordered. Device tensors
  // go through a host copy unless the backend reduces on the device (NCCL).
  virtual void allreduce_sum(Tensor& t);
  // Rank `root`'s values of `t` onto every rank, in place.
  virtual void broadcast(Tensor& t, int root);

  bool is_root() const { return rank() == 0; }
  // "rank 1 of 4" for messages.
  std::string where() const;
};

// The process's communicator: single-process until init_world() found a launcher.
Communicator& world();
// Starts the backend the environment asks for: MPI when the process was started by mpirun
// (OMPI_COMM_WORLD_SIZE or PMI_SIZE set), else single-process. Idempotent.
void init_world();
// Shuts MPI down at exit (MPI_Finalize); no-op for one process.
void finalize_world();

// The rank-ordered sum: out[i] = ((parts[0][i] + parts[1][i]) + parts[2][i]) + ...; each part
// holds `count` values laid out one after the other in `gathered`.
template <typename T>
void sum_in_rank_order(const T* gathered, int parts, size_t count, T* out) {
  for (size_t i = 0; i < count; ++i) out[i] = gathered[i];
  for (int p = 1; p < parts; ++p) {
    const T* part = gathered + size_t(p) * count;
    for (size_t i = 0; i < count; ++i) out[i] += part[i];
  }
}

// Arms the watchdog for the lifetime of the guard: a collective called `what` must finish within
// RETORT_DIST_TIMEOUT_S seconds (default 300; 0: no limit) or the process ends, naming it.
class CollectiveWatch {
 public:
  explicit CollectiveWatch(const char* what);
  ~CollectiveWatch();
  CollectiveWatch(const CollectiveWatch&) = delete;
  CollectiveWatch& operator=(const CollectiveWatch&) = delete;
};

// Root's string onto every rank.
std::string broadcast_string(Communicator& comm, const std::string& s, int root = 0);

// Installs a communicator (tests: in-process rank groups; backends: init_world).
void set_world(std::unique_ptr<Communicator> comm);

}  // namespace retort::dist
