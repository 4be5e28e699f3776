// The per-thread f32 math mode (see kernels/math_mode.h).
#include "kernels/math_mode.h"

namespace retort::kernels {
namespace {
thread_local bool g_tf32_allowed = false;
}  // namespace

bool tf32_allowed() { return g_tf32_allowed; }
void set_tf32_allowed(bool allowed) { g_tf32_allowed = allowed; }

}  // namespace retort::kernels
