// SIGINT/SIGTERM handling for runs (see train/interrupt.h).
#include "train/interrupt.h"
#include <atomic>
#include <csignal>
#include <cstring>
#include <unistd.h>

namespace retort {
namespace {
std::atomic<int> g_signal{0};
struct sigaction g_previous_int, g_previous_term;

void on_signal(int sig) {
  if (g_signal.exchange(sig) != 0) {  // the second one: stop now
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  const char* msg = "\n[retort] stopping after this step (a checkpoint is written); signal again to stop at once\n";
  [[maybe_unused]] ssize_t n = ::write(2, msg, std::strlen(msg));
}
}  // namespace

InterruptHandlers::InterruptHandlers() {
  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_previous_int);
  sigaction(SIGTERM, &sa, &g_previous_term);
}

InterruptHandlers::~InterruptHandlers() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
}

int interrupt_requested() { return g_signal.load(); }

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

}  // namespace retort
