// Waiting for a thread to sit blocked in write(2): the cancellation tests
// cancel a writer there (a gtest and a preloaded program share this).
// Header only, no strata dependency.
#ifndef STRATA_TESTS_UTIL_THREAD_IN_WRITE_H_
#define STRATA_TESTS_UTIL_THREAD_IN_WRITE_H_

#include <fcntl.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>

#include "tests/util/step_watchdog.h"

namespace strata::testing {

// True when thread `tid` of this process sits in write(2) (syscall 1) now.
inline bool InWrite(pid_t tid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", static_cast<int>(tid));
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[8] = {};
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  return n >= 2 && buf[0] == '1' && buf[1] == ' ';
}

// Waits until the thread whose id `tid` will hold (0 until it is known) sits
// in write(2) twice in a row, 5 ms apart: not a write passing through.
// (Unbounded here: the callers' step watchdog bounds it.)
inline void WaitInWrite(const std::atomic<pid_t>& tid) {
  while (tid.load() == 0) SleepMs(1);
  while (!InWrite(tid.load()) || (SleepMs(5), !InWrite(tid.load()))) SleepMs(1);
}

}  // namespace strata::testing

#endif  // STRATA_TESTS_UTIL_THREAD_IN_WRITE_H_
