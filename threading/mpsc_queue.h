// Intrusive multi-producer / single-consumer hand-off of whole batches.
// Any thread may hand over a chain of nodes with one CAS; only the owner takes
// them, all at once, with one exchange. Delivery order between batches is
// unspecified (last batch first), which is all that returning freed blocks
// needs. Nodes are plain memory; a Link policy says how one node links to
// the next (the default: a plain `next` member).
#ifndef STRATA_THREADING_MPSC_QUEUE_H_
#define STRATA_THREADING_MPSC_QUEUE_H_

#include <atomic>

#include "threading/backoff.h"

namespace strata::threading {

// The default link: a plain member `Node* next`.
template <typename Node>
struct PlainLink {
  static void Set(Node* n, Node* next) { n->next = next; }
};

// Link requires `static void Set(Node* n, Node* next)`; the consumer reads
// the links of what TakeAll() returns its own way (the inverse of Set).
// Thread-safety: PushBatch from any thread; TakeAll only from the single
// consumer (the owner). Lock-free; no ABA hazard because the consumer never
// pops single nodes: it swaps the whole list out.
template <typename Node, typename Link = PlainLink<Node>>
class MpscQueue {
 public:
  constexpr MpscQueue() = default;
  MpscQueue(const MpscQueue&) = delete;
  MpscQueue& operator=(const MpscQueue&) = delete;

  // Hands the chain first -> ... -> last (last's link is overwritten) to the
  // consumer. REQUIRES: the chain is private to the caller.
  void PushBatch(Node* first, Node* last) {
    // Relaxed: only the first guess of the CAS below, which validates it.
    Node* old_head = head_.load(std::memory_order_relaxed);
    Backoff backoff;
    for (;;) {
      Link::Set(last, old_head);  // private until the CAS succeeds
      // Release pairs with the acquire exchange in TakeAll(): the consumer
      // sees every link of the chain and every write the producer made to
      // the nodes before handing them over.
      if (head_.compare_exchange_weak(old_head, first, std::memory_order_release,
                                      std::memory_order_relaxed)) {
        return;
      }
      backoff.Pause();
    }
  }

  // Returns every node handed over so far (the chain ends with a link to
  // nullptr), or nullptr.
  Node* TakeAll() {
    // Relaxed pre-check keeps the empty case free of a locked instruction;
    // a node pushed just after it is simply taken next time.
    if (head_.load(std::memory_order_relaxed) == nullptr) return nullptr;
    // Acquire pairs with the release CAS in PushBatch().
    return head_.exchange(nullptr, std::memory_order_acquire);
  }

  // Racy emptiness hint (stats, heuristics).
  bool EmptyHint() const {
    // Relaxed: a hint only.
    return head_.load(std::memory_order_relaxed) == nullptr;
  }

 private:
  std::atomic<Node*> head_{nullptr};
};

}  // namespace strata::threading

#endif  // STRATA_THREADING_MPSC_QUEUE_H_
