// A run directory's lock: one retort process writes into a run directory at a time. The lock is
// an flock(2) on <dir>/.lock, so the operating system releases it when the process ends, even
// by SIGKILL; the file holds the holder's pid, which a refused run names.
#pragma once
#include <filesystem>

namespace retort {

class RunLock {
 public:
  // Takes the lock of `dir` (an existing directory); throws a retort::Error naming the pid of
  // the process that holds it.
  explicit RunLock(const std::filesystem::path& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace retort
