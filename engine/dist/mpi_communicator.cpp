// The MPI backend (Open MPI, host buffers) and init_world/finalize_world, which start it when
// the process was launched by mpirun (see engine/dist/communicator.h).
#define OMPI_SKIP_MPICXX 1  // the C API only: no libmpi_cxx
#include <mpi.h>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include "engine/dist/communicator.h"
#include "engine/error.h"

namespace retort::dist {
namespace {

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail("{} failed: {}", call, std::string(text, size_t(len)));
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    MPI_Comm node;
    check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
              "MPI_Comm_split_type");
    check_mpi(MPI_Comm_rank(node, &local_rank_), "MPI_Comm_rank(node)");
    MPI_Comm_free(&node);
  }
  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }

  void allgather_bytes(const void* send, void* recv, size_t bytes) override {
    RETORT_CHECK(bytes <= size_t(INT_MAX), "allgather of {} bytes: at most {} per call", bytes, INT_MAX);
    CollectiveWatch watch("allgather");
    check_mpi(MPI_Allgather(send, int(bytes), MPI_BYTE, recv, int(bytes), MPI_BYTE, MPI_COMM_WORLD), "MPI_Allgather");
  }
  void broadcast_bytes(void* data, size_t bytes, int root) override {
    CollectiveWatch watch("broadcast");
    auto* p = static_cast<unsigned char*>(data);
    for (size_t done = 0; done < bytes;) {
      const size_t n = std::min<size_t>(bytes - done, size_t(1) << 30);
      check_mpi(MPI_Bcast(p + done, int(n), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
      done += n;
    }
  }
  void barrier() override {
    CollectiveWatch watch("barrier");
    check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  }
  [[noreturn]] void abort(const std::string& why) override {
    std::fprintf(stderr, "[retort] %s: %s; aborting the job\n", where().c_str(), why.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
  }

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

bool launched_by_mpirun() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (const char* v = std::getenv(var); v && *v) return true;
  return false;
}

bool& started_mpi() {
  static bool started = false;
  return started;
}

}  // namespace

void init_world() {
  if (started_mpi() || !launched_by_mpirun()) return;
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  }
  started_mpi() = true;
  // MPI_ERRORS_RETURN: a failed call becomes a retort::Error naming it, which main turns into
  // an abort of the whole job.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  set_world(std::make_unique<MpiCommunicator>());
}

void finalize_world() {
  if (!started_mpi()) return;
  set_world(nullptr);
  started_mpi() = false;
  MPI_Finalize();
}

}  // namespace retort::dist
