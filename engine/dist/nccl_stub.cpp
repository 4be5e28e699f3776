// The NCCL backend in a build without CUDA: never available (see engine/dist/nccl.h).
#include "engine/dist/nccl.h"

namespace retort::dist {

std::unique_ptr<Communicator> make_nccl_communicator(Communicator&, int, std::string& why) {
  why = "this retort was built without CUDA, so without NCCL";
  return nullptr;
}

}  // namespace retort::dist
