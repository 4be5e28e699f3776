// The NCCL backend for device tensors (CUDA builds; a stub elsewhere says why it is absent).
#pragma once
#include <memory>
#include <string>
#include "engine/dist/communicator.h"

namespace retort::dist {

// A communicator whose allreduce_sum and broadcast run NCCL on device tensors (host tensors and
// byte collectives go to `host`). Rank 0 makes the unique id and `host` broadcasts it; each rank
// must already be bound to its own GPU. Null, with `why` set, where NCCL cannot serve: a build
// without CUDA, or two ranks of a node on one GPU (the host-copy path over `host` serves then).
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host, int device, std::string& why);

}  // namespace retort::dist
