// A heap's incoming queue: the pushes (incoming_queue.h).
#include "alloc/incoming_queue.h"

namespace strata::internal {

void TransitLink::Set(FreeBlock* n, FreeBlock* next) { SetLink(n, next, GetLinkKey()); }

void IncomingQueue::Push(FreeBlock* first, FreeBlock* last, uint64_t bytes) {
  // Relaxed: statistics; counted before the push so that the owner's
  // decrement on drain never sees it missing.
  queued_bytes_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  queue_.PushBatch(first, last);
}

void IncomingQueue::PushOne(FreeBlock* b, size_t bytes) {
  // A batch of one: a segment of one (if it has the room for the word).
  if (bytes >= 2 * sizeof(FreeBlock*)) SetSegment(b, b, 1, GetLinkKey());
  Push(b, b, bytes);
}

}  // namespace strata::internal
