// flock-based run directory lock (see train/run_lock.h).
#include "train/run_lock.h"
#include <cerrno>
#include <cstring>
#include <string>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include "engine/error.h"

namespace retort {

RunLock::RunLock(const std::filesystem::path& dir) {
  const std::string path = (dir / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  RETORT_CHECK(fd_ >= 0, "cannot open the run directory's lock '{}': {}", path, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      fail("run directory '{}' is in use by process {} (another `retort run` writing into it); wait for it to end, "
           "or stop it, before resuming",
           dir.string(), n > 0 ? std::string(buf, size_t(n)) : std::string("?"));
    fail("cannot lock run directory '{}': {}", dir.string(), std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    // The lock holds either way; the pid is only for the message of a refused run.
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace retort
