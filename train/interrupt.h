// Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM: the first signal asks the trainer to
// stop after the step it is in, write the stage's checkpoint and mark the run "interrupted"; a
// second signal ends the process at once (the default action). The app exits with 128 + the
// signal's number (130, 143), after printing how to resume.
#pragma once
#include <string>
#include "engine/error.h"

namespace retort {

// Raised by the trainer once the checkpoint after an interrupted step is written.
struct Interrupted : Error {
  int signal;
  std::string run_dir;  // filled in by the runner: the directory to resume
  Interrupted(int sig, const std::string& message, std::string dir = {})
      : Error(message), signal(sig), run_dir(std::move(dir)) {}
};

// Installs the handlers for its lifetime (a run), restoring the previous ones after.
class InterruptHandlers {
 public:
  InterruptHandlers();
  ~InterruptHandlers();
  InterruptHandlers(const InterruptHandlers&) = delete;
  InterruptHandlers& operator=(const InterruptHandlers&) = delete;
};

// The signal that asked the run to stop (SIGINT, SIGTERM), or 0.
int interrupt_requested();
const char* signal_name(int sig);  // "SIGINT", "SIGTERM"

}  // namespace retort
