#include "alloc/stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "alloc/size_class.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(StatsTest, BlocksInUseFollowTheWorkload) {
  Stats before;
  GetStats(&before);
  const size_t cls = internal::SizeToClass(72);
  std::vector<void*> blocks;
  for (int i = 0; i < 5000; ++i) blocks.push_back(Allocate(72));
  Stats peak;
  GetStats(&peak);
  EXPECT_EQ(peak.classes[cls].blocks_in_use, before.classes[cls].blocks_in_use + 5000);
  const uint64_t runs = peak.classes[cls].runs_full + peak.classes[cls].runs_partial +
                        peak.classes[cls].runs_empty;
  EXPECT_GE(runs, 5000u / (4096 / 72));
  EXPECT_GE(peak.arenas_owned, 1u);
  for (void* p : blocks) Deallocate(p);
  Stats after;
  GetStats(&after);
  EXPECT_EQ(after.classes[cls].blocks_in_use, before.classes[cls].blocks_in_use);
  EXPECT_LE(after.classes[cls].runs_full + after.classes[cls].runs_partial +
                after.classes[cls].runs_empty,
            2u);

  void* big = Allocate(1 << 20);
  Stats large;
  GetStats(&large);
  EXPECT_EQ(large.large_blocks, after.large_blocks + 1);
  Deallocate(big);
}

TEST(StatsTest, TableIsWrittenWithoutAllocating) {
  void* p = Allocate(24);
  char path[] = "/tmp/strata_stats_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  WriteStatsTable(fd);
  lseek(fd, 0, SEEK_SET);
  char buf[16384];
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  ASSERT_GT(n, 0);
  buf[n] = 0;
  close(fd);
  unlink(path);
  const std::string text(buf);
  EXPECT_NE(text.find("class  size"), std::string::npos);
  EXPECT_NE(text.find("# arenas:"), std::string::npos);
  EXPECT_NE(text.find("# OS:"), std::string::npos);
  Deallocate(p);
}

}  // namespace
}  // namespace strata
