// Helpers for small measurement programs: --name=value integer flags and
// the process's resident memory. They use stdio and may allocate: not for
// the allocator itself.
#ifndef STRATA_TOOLS_UTIL_CLI_H_
#define STRATA_TOOLS_UTIL_CLI_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace strata::util {

// The value of --name=N on the command line, or def.
inline long IntFlag(int argc, char** argv, const char* name, long def) {
  const size_t n = strlen(name);
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, name, n) == 0 &&
        argv[i][2 + n] == '=') {
      return strtol(argv[i] + 3 + n, nullptr, 10);
    }
  }
  return def;
}

// This process's resident set size in bytes (0 if unknown).
inline uint64_t ResidentBytes() {
  FILE* f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f != nullptr) {
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    fclose(f);
  }
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace strata::util

#endif  // STRATA_TOOLS_UTIL_CLI_H_
