// CUDA graphs of the engine's stream (see kernels/cuda/cuda_api.h): capture of everything the
// stream runs between begin_capture and end_capture, instantiated with auto-free-on-launch (the
// stream-ordered allocations a captured step makes and does not free inside it are freed at the
// next launch, so the graph can be replayed step after step), and replays on the same stream.
#include <cuda_runtime.h>
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"

namespace retort::cuda {
namespace {
thread_local bool g_capturing = false;

// Ends a capture that failed part-way, dropping whatever was captured.
void abandon_capture() {
  cudaGraph_t partial = nullptr;
  cudaStreamEndCapture(stream(), &partial);
  if (partial) cudaGraphDestroy(partial);
  cudaGetLastError();  // the capture's error is reported by the caller; clear it here
  g_capturing = false;
}
}  // namespace

bool capturing() { return g_capturing; }

void begin_capture() {
  RETORT_REQUIRE(!g_capturing, "CUDA graph: a capture is already under way");
  RETORT_CUDA_CHECK(cudaStreamSynchronize(stream()));  // nothing earlier joins the graph
  RETORT_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal));
  g_capturing = true;
}

void cancel_capture() {
  if (g_capturing) abandon_capture();
}

void* end_capture() {
  RETORT_REQUIRE(g_capturing, "CUDA graph: end_capture without begin_capture");
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream(), &graph);
  g_capturing = false;
  if (ended != cudaSuccess) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    raise("CUDA graph: the capture was invalidated (", cudaGetErrorString(ended),
          "): an operation that cannot be captured ran during the step");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiateWithFlags(&exec, graph, cudaGraphInstantiateFlagAutoFreeOnLaunch);
  cudaGraphDestroy(graph);
  if (made != cudaSuccess) {
    cudaGetLastError();
    raise("CUDA graph: instantiation failed: ", cudaGetErrorString(made));
  }
  return exec;
}

void launch_graph(void* exec) {
  RETORT_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), stream()));
}

void destroy_graph(void* exec) {
  if (exec) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
}

}  // namespace retort::cuda
