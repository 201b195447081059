// Captures what a writer to a file descriptor writes (stats, profiles):
// the tests read strata's no-alloc outputs back as text.
#ifndef STRATA_TESTS_UTIL_CAPTURE_WRITE_H_
#define STRATA_TESTS_UTIL_CAPTURE_WRITE_H_

#include <stdlib.h>
#include <unistd.h>

#include <string>

namespace strata::testing {

// Runs write(fd) on a fresh temporary file and returns what it wrote in
// *text; returns write's result (-2 when no file could be made).
template <typename Fn>
int CaptureWrite(Fn write, std::string* text) {
  char path[] = "/tmp/strata_capture_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return -2;
  const int rc = write(fd);
  text->clear();
  lseek(fd, 0, SEEK_SET);
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) text->append(buf, static_cast<size_t>(n));
  close(fd);
  unlink(path);
  return rc;
}

}  // namespace strata::testing

#endif  // STRATA_TESTS_UTIL_CAPTURE_WRITE_H_
