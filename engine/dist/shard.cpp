// The calling thread's shard of the global batch (see engine/dist/shard.h).
#include "engine/dist/shard.h"

namespace retort::dist {
namespace {
thread_local Shard current;
}

const Shard& current_shard() { return current; }

ShardScope::ShardScope(Shard shard) : saved_(current) { current = shard; }
ShardScope::~ShardScope() { current = saved_; }

}  // namespace retort::dist
