// Run with libstrata.so preloaded: threads allocate and free continuously
// while the main thread forks again and again; each child allocates (also
// from a new thread), verifies its blocks and exits. Exits 0 only if every
// child did.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

static std::atomic<bool> g_stop{false};

static void Churn(unsigned seed) {
  std::vector<char*> live;
  while (!g_stop.load(std::memory_order_relaxed)) {
    seed = seed * 1103515245u + 12345u;
    const size_t size = 1 + (seed >> 8) % (seed % 32 == 0 ? 200000 : 2000);
    char* p = static_cast<char*>(malloc(size));
    memset(p, 1, size);
    live.push_back(p);
    if (live.size() > 100) {
      for (char* q : live) free(q);
      live.clear();
    }
  }
  for (char* q : live) free(q);
}

static int Child() {
  std::vector<char*> blocks;
  for (int i = 0; i < 5000; ++i) {
    char* p = static_cast<char*>(malloc(16 + i % 1000));
    if (p == nullptr) return 2;
    memset(p, i & 0xff, 16);
    blocks.push_back(p);
  }
  std::thread t([] {
    for (int i = 0; i < 2000; ++i) free(malloc(32 + i % 500));
  });
  t.join();
  for (size_t i = 0; i < blocks.size(); ++i) {
    for (int k = 0; k < 16; ++k) {
      if (blocks[i][k] != static_cast<char>(i & 0xff)) return 3;
    }
    free(blocks[i]);
  }
  return 0;
}

int main() {
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; ++t) threads.emplace_back(Churn, t + 1);
  int failures = 0;
  const int rounds = 30;
  for (int r = 0; r < rounds; ++r) {
    const pid_t pid = fork();
    if (pid < 0) return 10;
    if (pid == 0) _exit(Child());
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "fork_load: child %d failed (status %d)\n", r, status);
      ++failures;
    }
  }
  g_stop.store(true);
  for (auto& t : threads) t.join();
  printf("fork_load: %d forks, %d failures\n", rounds, failures);
  return failures == 0 ? 0 : 1;
}
