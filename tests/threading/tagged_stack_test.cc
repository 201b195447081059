#include "threading/tagged_stack.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/sanitizer.h"

namespace strata::threading {
namespace {

struct alignas(64) Node {
  std::atomic<Node*> next{nullptr};
  std::atomic<int> owner{-1};  // which thread holds the node now
  int id = 0;
};

using Stack = TaggedStack<Node, &Node::next>;

TEST(TaggedStackTest, LifoSingleThreaded) {
  Stack s;
  Node a, b, c;
  EXPECT_EQ(s.Pop(), nullptr);
  EXPECT_TRUE(s.EmptyHint());
  s.Push(&a);
  s.Push(&b);
  s.Push(&c);
  EXPECT_EQ(s.Pop(), &c);
  EXPECT_EQ(s.Pop(), &b);
  EXPECT_EQ(s.Pop(), &a);
  EXPECT_EQ(s.Pop(), nullptr);
}

// Threads pop nodes and push them back at random: a node must never be held
// by two threads at once (the ABA failure mode) and none may be lost.
TEST(TaggedStackTest, ConcurrentPopPushNeverDuplicatesOrLoses) {
  constexpr int kNodes = 64;
  constexpr int kThreads = 4;
  const int kIterations = testing::Scaled(200000, 20000);
  std::vector<Node> nodes(kNodes);
  Stack s;
  for (int i = 0; i < kNodes; ++i) {
    nodes[i].id = i;
    s.Push(&nodes[i]);
  }
  std::vector<std::thread> threads;
  std::atomic<bool> failed{false};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Node* held[4] = {};
      uint32_t rng = 12345u + t;
      for (int i = 0; i < kIterations; ++i) {
        rng = rng * 1664525u + 1013904223u;
        const int slot = (rng >> 16) & 3;
        if (held[slot] == nullptr) {
          Node* n = s.Pop();
          if (n != nullptr) {
            int expected = -1;
            // Relaxed is enough for a detector: pop already synchronised.
            if (!n->owner.compare_exchange_strong(expected, t, std::memory_order_relaxed)) {
              failed.store(true);
            }
            held[slot] = n;
          }
        } else {
          held[slot]->owner.store(-1, std::memory_order_relaxed);
          s.Push(held[slot]);
          held[slot] = nullptr;
        }
      }
      for (Node*& n : held) {
        if (n != nullptr) {
          n->owner.store(-1, std::memory_order_relaxed);
          s.Push(n);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(failed.load());
  std::vector<bool> seen(kNodes, false);
  int count = 0;
  while (Node* n = s.Pop()) {
    ASSERT_FALSE(seen[n->id]);
    seen[n->id] = true;
    ++count;
  }
  EXPECT_EQ(count, kNodes);
}

}  // namespace
}  // namespace strata::threading
