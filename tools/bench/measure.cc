// measure: runs one command and reports its wall time, CPU time and peak RSS,
// for the comparison runner (compare.py).
//
//   measure --out=FILE [--preload=LIB] -- COMMAND ARGS...
//
// Why not measure from Python: a child's ru_maxrss is the largest RSS its
// process ever had, including the parent's memory image it had from fork
// until exec — Python's ~15 MiB, more than most workloads use. This small
// static program forks the command instead, so that floor is a few hundred
// KiB. LD_PRELOAD is set in the command's environment only, never here.
// Writes one line to FILE:
//   status=<wait status> wall_s=<s> user_s=<s> sys_s=<s> maxrss_kib=<KiB>
// and exits 0 once the command has run (whatever its status), 2 on bad usage.
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double Seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
}

}  // namespace

int main(int argc, char** argv) {
  const char* out = nullptr;
  const char* preload = nullptr;
  int i = 1;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
    if (std::strncmp(argv[i], "--out=", 6) == 0) {
      out = argv[i] + 6;
    } else if (std::strncmp(argv[i], "--preload=", 10) == 0) {
      preload = argv[i] + 10;
    } else {
      break;
    }
  }
  if (out == nullptr || i >= argc || std::strcmp(argv[i], "--") != 0 || i + 1 >= argc) {
    std::fprintf(stderr, "usage: %s --out=FILE [--preload=LIB] -- COMMAND ARGS...\n", argv[0]);
    return 2;
  }
  char** command = argv + i + 1;

  const double start = Now();
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("measure: fork");
    return 2;
  }
  if (pid == 0) {
    if (preload != nullptr && preload[0] != '\0') {
      setenv("LD_PRELOAD", preload, 1);
    } else {
      unsetenv("LD_PRELOAD");
    }
    execv(command[0], command);
    std::fprintf(stderr, "measure: cannot run %s: %s\n", command[0], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  rusage usage;
  std::memset(&usage, 0, sizeof(usage));
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) {
      std::perror("measure: wait4");
      return 2;
    }
  }
  const double wall = Now() - start;

  FILE* f = std::fopen(out, "w");
  if (f == nullptr) {
    std::perror("measure: cannot write the result");
    return 2;
  }
  std::fprintf(f, "status=%d wall_s=%.6f user_s=%.6f sys_s=%.6f maxrss_kib=%ld\n", status, wall,
               Seconds(usage.ru_utime), Seconds(usage.ru_stime), usage.ru_maxrss);
  return std::fclose(f) == 0 ? 0 : 2;
}
