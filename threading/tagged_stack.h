// ABA-safe intrusive Treiber stack. Nodes must be type-stable: once a node has
// been pushed, its memory must stay mapped and keep its `next` field for the
// life of the process (strata recycles such metadata, it never unmaps it),
// because a popper may still read `next` of a node that another thread has
// just popped. The ABA problem is solved here and only here: the head word
// packs the node pointer with a modification counter (tag).
#ifndef STRATA_THREADING_TAGGED_STACK_H_
#define STRATA_THREADING_TAGGED_STACK_H_

#include <atomic>
#include <cstdint>

namespace strata::threading {

// The head word: bits [0, kPointerBits) hold (pointer >> kAlignShift), the
// rest a tag that changes on every successful push or pop, so a CAS that saw
// the same pointer but an older tag fails.
inline constexpr int kTaggedAlignShift = 6;   // nodes are 64-byte aligned
inline constexpr int kTaggedPointerBits = 41; // 47-bit user space >> 6
inline constexpr uint64_t kTaggedPointerMask = (uint64_t{1} << kTaggedPointerBits) - 1;

// Node requires a member `std::atomic<Node*> Next` (named by the template
// argument) and alignment >= 64. Thread-safety: every method may be called
// from any thread at any time; lock-free.
template <typename Node, std::atomic<Node*> Node::*Next>
class TaggedStack {
 public:
  constexpr TaggedStack() = default;
  TaggedStack(const TaggedStack&) = delete;
  TaggedStack& operator=(const TaggedStack&) = delete;

  void Push(Node* node) {
    // Relaxed: only the first guess of the CAS below, which validates it.
    uint64_t old_head = head_.load(std::memory_order_relaxed);
    for (;;) {
      // Relaxed: the node is private to us until the CAS below publishes it.
      (node->*Next).store(Unpack(old_head), std::memory_order_relaxed);
      // Release pairs with the acquire load/CAS in Pop(): whoever pops `node`
      // sees its `next` and everything written to it before the push.
      if (head_.compare_exchange_weak(old_head, Pack(node, old_head),
                                      std::memory_order_release,
                                      std::memory_order_relaxed)) {
        return;
      }
    }
  }

  // Returns the most recently pushed node, or nullptr when empty.
  Node* Pop() {
    // Acquire pairs with the release CAS in Push().
    uint64_t old_head = head_.load(std::memory_order_acquire);
    for (;;) {
      Node* top = Unpack(old_head);
      if (top == nullptr) return nullptr;
      // Relaxed and possibly stale: if `top` was popped and pushed again since
      // we loaded the head, the tag moved and the CAS below fails. The node
      // is type-stable, so the read itself is always safe.
      Node* next = (top->*Next).load(std::memory_order_relaxed);
      // Acquire on both outcomes pairs with Push()'s release, as above.
      if (head_.compare_exchange_weak(old_head, Pack(next, old_head),
                                      std::memory_order_acquire,
                                      std::memory_order_acquire)) {
        return top;
      }
    }
  }

  // Racy emptiness hint for heuristics; never a correctness decision.
  bool EmptyHint() const {
    // Relaxed: a hint only; callers retry with Pop().
    return Unpack(head_.load(std::memory_order_relaxed)) == nullptr;
  }

 private:
  static Node* Unpack(uint64_t word) {
    return reinterpret_cast<Node*>((word & kTaggedPointerMask) << kTaggedAlignShift);
  }
  static uint64_t Pack(Node* node, uint64_t old_word) {
    uint64_t tag = (old_word >> kTaggedPointerBits) + 1;
    return (tag << kTaggedPointerBits) |
           (reinterpret_cast<uint64_t>(node) >> kTaggedAlignShift);
  }

  std::atomic<uint64_t> head_{0};
};

}  // namespace strata::threading

#endif  // STRATA_THREADING_TAGGED_STACK_H_
