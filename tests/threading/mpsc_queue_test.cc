#include "threading/mpsc_queue.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/sanitizer.h"

namespace strata::threading {
namespace {

struct Node {
  Node* next = nullptr;
  int producer = 0;
  int seq = 0;
};

TEST(MpscQueueTest, EmptyTakesNothing) {
  MpscQueue<Node> q;
  EXPECT_TRUE(q.EmptyHint());
  EXPECT_EQ(q.TakeAll(), nullptr);
}

TEST(MpscQueueTest, BatchArrivesWhole) {
  MpscQueue<Node> q;
  Node n[3];
  n[0].next = &n[1];
  n[1].next = &n[2];
  q.PushBatch(&n[0], &n[2]);
  Node* got = q.TakeAll();
  int count = 0;
  for (Node* x = got; x != nullptr; x = x->next) ++count;
  EXPECT_EQ(count, 3);
  EXPECT_EQ(q.TakeAll(), nullptr);
}

// A Link policy decides how the queue links one batch to the next (strata's
// blocks link encoded): the queue writes the tail's link only through it.
struct XorLink {
  static constexpr uintptr_t kKey = 0x5a5a5a5a5a5a5a5a;
  static void Set(Node* n, Node* next) {
    n->next = reinterpret_cast<Node*>(reinterpret_cast<uintptr_t>(next) ^ kKey);
  }
  static Node* Get(const Node* n) {
    return reinterpret_cast<Node*>(reinterpret_cast<uintptr_t>(n->next) ^ kKey);
  }
};

TEST(MpscQueueTest, LinkPolicyLinksBatches) {
  MpscQueue<Node, XorLink> q;
  Node a[2], b[2];
  XorLink::Set(&a[0], &a[1]);
  XorLink::Set(&b[0], &b[1]);
  q.PushBatch(&a[0], &a[1]);  // a[1] links (encoded) to null
  q.PushBatch(&b[0], &b[1]);  // b[1] links (encoded) to a[0]
  std::vector<Node*> order;
  for (Node* x = q.TakeAll(); x != nullptr; x = XorLink::Get(x)) order.push_back(x);
  EXPECT_EQ(order, (std::vector<Node*>{&b[0], &b[1], &a[0], &a[1]}));
}

// Producers hand over batches while the consumer drains: every node arrives
// exactly once and, within one producer, batches keep their inner order.
TEST(MpscQueueTest, ManyProducersOneConsumerLoseNothing) {
  constexpr int kProducers = 4;
  constexpr int kBatch = 16;
  const int kBatches = testing::Scaled(5000, 500);
  std::vector<std::vector<Node>> nodes(kProducers, std::vector<Node>(kBatch * kBatches));
  MpscQueue<Node> q;
  std::atomic<int> done{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int b = 0; b < kBatches; ++b) {
        Node* first = &nodes[p][b * kBatch];
        for (int i = 0; i < kBatch; ++i) {
          Node& n = nodes[p][b * kBatch + i];
          n.producer = p;
          n.seq = b * kBatch + i;
          n.next = i + 1 < kBatch ? &n + 1 : nullptr;
        }
        q.PushBatch(first, first + kBatch - 1);
      }
      done.fetch_add(1, std::memory_order_release);
    });
  }
  std::vector<std::vector<bool>> seen(kProducers, std::vector<bool>(kBatch * kBatches, false));
  long received = 0;
  for (;;) {
    const bool all_done = done.load(std::memory_order_acquire) == kProducers;
    for (Node* n = q.TakeAll(); n != nullptr; n = n->next) {
      ASSERT_FALSE(seen[n->producer][n->seq]);
      seen[n->producer][n->seq] = true;
      ++received;
    }
    if (all_done && q.EmptyHint()) break;
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(received, long{kProducers} * kBatch * kBatches);
}

}  // namespace
}  // namespace strata::threading
