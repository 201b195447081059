#include "threading/thread_exit.h"

#include <pthread.h>

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace strata::threading {
namespace {

std::atomic<int> g_fired{0};
std::atomic<void*> g_value{nullptr};

void OnExit(void* value) {
  g_value.store(value);
  g_fired.fetch_add(1);
}

ThreadExitHook g_hook(&OnExit);

TEST(ThreadExitTest, FiresOnceWithTheArmedValue) {
  int marker = 0;
  std::thread t([&] { ASSERT_TRUE(g_hook.Arm(&marker)); });
  t.join();
  EXPECT_EQ(g_fired.load(), 1);
  EXPECT_EQ(g_value.load(), &marker);
}

void* RawThread(void* arg) {
  g_hook.Arm(arg);
  return nullptr;
}

// A thread created with plain pthreads (never told about strata) is covered.
TEST(ThreadExitTest, FiresForRawPthreads) {
  const int before = g_fired.load();
  int marker = 0;
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, nullptr, &RawThread, &marker), 0);
  pthread_join(th, nullptr);
  EXPECT_EQ(g_fired.load(), before + 1);
  EXPECT_EQ(g_value.load(), &marker);
}

TEST(ThreadExitTest, UnarmedThreadsDoNotFire) {
  const int before = g_fired.load();
  std::thread t([] {});
  t.join();
  EXPECT_EQ(g_fired.load(), before);
}

}  // namespace
}  // namespace strata::threading
