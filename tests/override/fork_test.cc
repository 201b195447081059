// A multithreaded program forks again and again while its threads allocate;
// every child allocates (from its main thread and from new threads), checks
// its blocks and exits cleanly.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace {

void Churn(std::atomic<bool>* stop, int seed) {
  std::vector<char*> live;
  unsigned x = static_cast<unsigned>(seed);
  while (!stop->load(std::memory_order_relaxed)) {
    x = x * 1103515245u + 12345u;
    const size_t size = 1 + (x >> 8) % (x % 16 == 0 ? 300000 : 3000);
    char* p = static_cast<char*>(malloc(size));
    memset(p, static_cast<int>(size & 0xff), size);
    live.push_back(p);
    if (live.size() > 200) {
      for (char* q : live) free(q);
      live.clear();
    }
  }
  for (char* q : live) free(q);
}

// What a child does: allocate, verify, also from a fresh thread; exit code
// says whether everything held.
int ChildWork() {
  std::vector<char*> blocks;
  for (int i = 0; i < 20000; ++i) {
    const size_t size = 8 + (i * 37) % 5000;
    char* p = static_cast<char*>(malloc(size));
    if (p == nullptr || !strata::Owns(p)) return 2;
    memset(p, i & 0xff, size);
    blocks.push_back(p);
  }
  bool ok = true;
  std::thread t([&] {
    for (int i = 0; i < 5000; ++i) {
      void* p = malloc(64 + i % 100);
      if (p == nullptr) ok = false;
      free(p);
    }
    // Free some of the main thread's blocks remotely.
    for (size_t i = 0; i < blocks.size(); i += 2) {
      free(blocks[i]);
      blocks[i] = nullptr;
    }
  });
  t.join();
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i] == nullptr) continue;
    const size_t size = 8 + (i * 37) % 5000;
    for (size_t k = 0; k < size; k += 97) {
      if (blocks[i][k] != static_cast<char>(i & 0xff)) return 3;
    }
    free(blocks[i]);
  }
  return ok ? 0 : 4;
}

TEST(ForkTest, ForkUnderLoadAndAllocateInTheChild) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(Churn, &stop, t + 1);
  for (int round = 0; round < 25; ++round) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(ChildWork());
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "round " << round << " status " << status;
    ASSERT_EQ(WEXITSTATUS(status), 0) << "round " << round;
  }
  stop.store(true);
  for (auto& t : threads) t.join();
}

}  // namespace
