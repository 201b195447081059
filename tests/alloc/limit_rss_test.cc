// What a soft memory limit does to resident memory: a burst that, with
// today's caches, would hold about 208 MiB at its peak stays within the
// limit (150 MiB) plus a little. Each case runs in a child process of its
// own, so that its peak RSS (VmHWM) is its own. Not under the sanitizers,
// whose shadow memory would be measured too.
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "alloc/limit.h"
#include "alloc/options.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// The process's VmHWM or VmRSS, in bytes (0 if unreadable).
size_t ReadStatus(const char* key) {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  size_t kb = 0;
  const size_t n = strlen(key);
  while (fgets(line, sizeof(line), f) != nullptr) {
    if (strncmp(line, key, n) == 0) kb = strtoull(line + n + 1, nullptr, 10);
  }
  fclose(f);
  return kb * 1024;
}

// The burst: 16 blocks of 6 MiB written and freed (the large cache's 16
// slots keep them: 96 MiB resident), then 16 blocks of 7 MiB written
// (112 MiB), which the cached 6 MiB mappings cannot serve. Returns the peak
// RSS growth.
size_t BurstPeakGrowth(size_t soft_limit) {
  // No purge on the clock: the cache holds its mappings however slow the
  // machine, so only the limit can give them back.
  if (!SetOptionByName("purge_delay_ms", "3600000")) return 0;
  const size_t base = ReadStatus("VmRSS:");
  if (soft_limit != 0 &&
      !SetMemoryLimit(internal::GetLimitStats().footprint_bytes + soft_limit, /*hard=*/false)) {
    return 0;
  }
  std::vector<void*> blocks;
  for (int i = 0; i < 16; ++i) {
    void* p = Allocate(6 * kMiB);
    if (p == nullptr) return 0;
    memset(p, 1, 6 * kMiB);
    blocks.push_back(p);
  }
  for (void* p : blocks) Deallocate(p);
  blocks.clear();
  for (int i = 0; i < 16; ++i) {
    void* p = Allocate(7 * kMiB);
    if (p == nullptr) return 0;
    memset(p, 2, 7 * kMiB);
    blocks.push_back(p);
  }
  const size_t peak = ReadStatus("VmHWM:");
  for (void* p : blocks) Deallocate(p);
  return peak > base ? peak - base : 0;
}

// Runs the burst in a child; returns its peak growth in bytes.
size_t InChild(size_t soft_limit) {
  int fds[2];
  if (pipe(fds) != 0) return 0;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const size_t growth = BurstPeakGrowth(soft_limit);
    (void)!write(fds[1], &growth, sizeof(growth));
    _exit(0);
  }
  close(fds[1]);
  size_t growth = 0;
  if (read(fds[0], &growth, sizeof(growth)) != sizeof(growth)) growth = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return growth;
}

TEST(LimitRssTest, ASoftLimitKeepsABurstWithinIt) {
  // Without a limit the cache and the new blocks are resident together.
  const size_t unlimited = InChild(0);
  printf("peak RSS growth without a limit: %zu MiB\n", unlimited / kMiB);
  ASSERT_GT(unlimited, 190 * kMiB) << "the burst no longer exceeds the limit: the test proves nothing";
  const size_t limited = InChild(150 * kMiB);
  printf("peak RSS growth with a 150 MiB soft limit: %zu MiB\n", limited / kMiB);
  ASSERT_GT(limited, 100 * kMiB);  // the burst ran (112 MiB live at the end)
  EXPECT_LE(limited, 150 * kMiB + 8 * kMiB);
}

}  // namespace
}  // namespace strata
