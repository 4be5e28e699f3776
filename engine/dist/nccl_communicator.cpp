// The NCCL backend (see engine/dist/nccl.h): sums and broadcasts of device tensors on the
// engine's stream, bootstrapped and served for host data by the MPI communicator. NCCL's sums
// are not rank-ordered: results agree across ranks but may differ in the last bits from the
// MPI backend's (docs/distributed.md).
#include <cuda_runtime.h>
#include <nccl.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "engine/dist/nccl.h"
#include "engine/error.h"

namespace retort::cuda {
cudaStream_t stream();  // the engine's stream (kernels/cuda/runtime.cu)
}

namespace retort::dist {
namespace {

void check_nccl(ncclResult_t rc, const char* call) {
  RETORT_CHECK(rc == ncclSuccess, "{} failed: {}", call, ncclGetErrorString(rc));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& host, ncclComm_t comm) : host_(host), comm_(comm) {}
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }
  std::string backend() const override { return "nccl"; }
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  int local_rank() const override { return host_.local_rank(); }
  void allgather_bytes(const void* send, void* recv, size_t bytes) override { host_.allgather_bytes(send, recv, bytes); }
  void broadcast_bytes(void* data, size_t bytes, int root) override { host_.broadcast_bytes(data, bytes, root); }
  void barrier() override { host_.barrier(); }
  [[noreturn]] void abort(const std::string& why) override {
    ncclCommAbort(comm_);
    host_.abort(why);
    std::_Exit(1);  // not reached: the host communicator ends the job
  }
  void allreduce_sum(Tensor& t) override {
    if (t.device().is_cpu()) return host_.allreduce_sum(t);
    RETORT_CHECK(t.is_contiguous() && (t.dtype() == DType::f32 || t.dtype() == DType::f64),
                 "allreduce_sum: only contiguous f32 and f64 tensors, got {}", t.str());
    CollectiveWatch watch("ncclAllReduce");
    check_nccl(ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()),
                             t.dtype() == DType::f32 ? ncclFloat32 : ncclFloat64, ncclSum, comm_, cuda::stream()),
               "ncclAllReduce");
    RETORT_CHECK(cudaStreamSynchronize(cuda::stream()) == cudaSuccess, "ncclAllReduce: the stream failed");
  }
  void broadcast(Tensor& t, int root) override {
    if (t.device().is_cpu()) return host_.broadcast(t, root);
    CollectiveWatch watch("ncclBroadcast");
    check_nccl(ncclBroadcast(t.raw_data(), t.raw_data(), t.nbytes(), ncclUint8, root, comm_, cuda::stream()),
               "ncclBroadcast");
    RETORT_CHECK(cudaStreamSynchronize(cuda::stream()) == cudaSuccess, "ncclBroadcast: the stream failed");
  }

 private:
  Communicator& host_;
  ncclComm_t comm_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host, int device, std::string& why) {
  // NCCL needs one GPU per rank: gather every rank's (host name, device) and refuse duplicates.
  struct Placement {
    char host[64] = {};
    int device = 0;
  } mine;
  gethostname(mine.host, sizeof(mine.host) - 1);
  mine.device = device;
  std::vector<Placement> all(size_t(host.size()));
  host.allgather_bytes(&mine, all.data(), sizeof(Placement));
  for (size_t a = 0; a < all.size(); ++a)
    for (size_t b = a + 1; b < all.size(); ++b)
      if (std::strcmp(all[a].host, all[b].host) == 0 && all[a].device == all[b].device) {
        why = fmt::format("ranks {} and {} share GPU {} of {} (NCCL needs one GPU per rank)", a, b, all[a].device,
                          all[a].host);
        return nullptr;
      }
  ncclUniqueId id;
  if (host.is_root()) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  host.broadcast_bytes(&id, sizeof(id), 0);
  ncclComm_t comm;
  {
    CollectiveWatch watch("ncclCommInitRank");
    check_nccl(ncclCommInitRank(&comm, host.size(), id, host.rank()), "ncclCommInitRank");
  }
  return std::make_unique<NcclCommunicator>(host, comm);
}

}  // namespace retort::dist
