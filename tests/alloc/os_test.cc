// The OS layer's contract, and what the allocator does when the OS refuses.
#include "alloc/os.h"

#include <errno.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "alloc/config.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace strata::internal::os {
namespace {

TEST(OsTest, MapAlignedGivesAlignedZeroedMemory) {
  for (size_t align : {size_t{4096}, kArenaSize, size_t{1} << 21}) {
    const size_t size = 3 * kArenaSize;
    errno = 1234;
    auto* p = static_cast<unsigned char*>(MapAligned(size, align));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(errno, 1234);  // untouched
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    for (size_t i = 0; i < size; i += 4096) ASSERT_EQ(p[i], 0);
    memset(p, 1, size);
    EXPECT_TRUE(Purge(p, size, PurgeMode::kDontNeed));
    EXPECT_EQ(p[100], 0);  // DONTNEED reads back zero
    Unmap(p, size);
  }
}

TEST(OsTest, OverflowingSizeIsRefused) {
  EXPECT_EQ(MapAligned(~size_t{0} - 4095, kArenaSize), nullptr);
}

void* RefuseMap(void*, size_t) { return nullptr; }

// With an OS that refuses every mapping, requests that need new memory fail
// cleanly with ENOMEM, and memory already held keeps working.
TEST(OsTest, RefusingOsGivesEnomem) {
  void* held = strata::Allocate(100);  // this thread's heap exists now
  ASSERT_NE(held, nullptr);
  const Backend refusing = {&RefuseMap, RealBackend()->unmap, RealBackend()->purge};
  const Backend* previous = SetBackendForTesting(&refusing);
  errno = 0;
  EXPECT_EQ(strata::Allocate(size_t{8} << 20), nullptr);  // large: a fresh mapping
  EXPECT_EQ(errno, ENOMEM);
  // Exhaust what the heap holds for one medium class; eventually it needs a
  // new arena, which the OS refuses.
  void* blocks[20000];
  size_t n = 0;
  errno = 0;
  while (n < 20000) {
    void* p = strata::Allocate(60000);
    if (p == nullptr) break;
    blocks[n++] = p;
  }
  EXPECT_LT(n, 20000u);
  EXPECT_EQ(errno, ENOMEM);
  SetBackendForTesting(previous);
  for (size_t i = 0; i < n; ++i) strata::Deallocate(blocks[i]);
  void* after = strata::Allocate(60000);  // works again
  EXPECT_NE(after, nullptr);
  strata::Deallocate(after);
  strata::Deallocate(held);
}

}  // namespace
// ReadMemory never faults: unreadable memory is a false, not a signal.
TEST(OsTest, ReadMemoryRefusesUnreadableMemory) {
  const uint64_t word = 0x1234567890abcdefULL;
  uint64_t got = 0;
  ASSERT_TRUE(os::ReadMemory(&word, &got, sizeof(got)));
  EXPECT_EQ(got, word);
  void* none = mmap(nullptr, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(none, MAP_FAILED);
  EXPECT_FALSE(os::ReadMemory(none, &got, sizeof(got)));
  EXPECT_FALSE(os::ReadMemory(reinterpret_cast<void*>(uintptr_t{16}), &got, sizeof(got)));
  munmap(none, 8192);
}

// FindMapping merges the lines the kernel split one mapping into (madvise)
// and stops where the kind or the writability changes (mprotect).
TEST(OsTest, FindMappingMergesSplitLines) {
  constexpr size_t kLen = 16 * 4096;
  auto* m = static_cast<char*>(mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(m, MAP_FAILED);
  const auto start = reinterpret_cast<uintptr_t>(m);
  ASSERT_EQ(madvise(m + 4 * 4096, 4096, MADV_DONTDUMP), 0);  // splits it in three
  os::Mapping found;
  ASSERT_EQ(os::FindMapping(start + 100, start + kLen, &found), os::FindResult::kFound);
  EXPECT_LE(found.start, start);
  EXPECT_GE(found.end, start + kLen);
  EXPECT_EQ(found.kind, os::Mapping::kAnonymous);
  EXPECT_TRUE(found.writable);
  ASSERT_EQ(mprotect(m + 8 * 4096, 4096, PROT_READ), 0);
  ASSERT_EQ(os::FindMapping(start + 100, start + kLen, &found), os::FindResult::kFound);
  EXPECT_EQ(found.end, start + 8 * 4096);  // the read-only page ends it
  munmap(m, kLen);
  EXPECT_EQ(os::FindMapping(start + 100, start + 200, &found), os::FindResult::kNotMapped);
  int on_stack = 0;
  const auto a = reinterpret_cast<uintptr_t>(&on_stack);
  ASSERT_EQ(os::FindMapping(a, a + 1, &found), os::FindResult::kFound);
  EXPECT_NE(found.kind, os::Mapping::kHeap);
}

// The thread count follows threads as they start. Relative to the count
// before, and allowing for strata's background release thread, which may
// start (on the first release) or stop (when an option turns it off)
// meanwhile.
TEST(OsTest, ReadThreadStateCountsThreads) {
  ThreadState before;
  ASSERT_TRUE(ReadThreadState(&before));
  EXPECT_GE(before.threads, 1);
  EXPECT_FALSE(before.leader_exited);
  constexpr int kThreads = 3;
  std::atomic<int> started{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      started.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
    });
  }
  while (started.load() < kThreads) std::this_thread::yield();
  ThreadState during;
  const bool read = ReadThreadState(&during);
  go.store(true);
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(read);
  EXPECT_GE(during.threads, before.threads + kThreads - 1);
  EXPECT_LE(during.threads, before.threads + kThreads + 1);
  EXPECT_FALSE(during.leader_exited);
}

}  // namespace strata::internal::os
