// The run state machine's transitions and the owner line's checks (run.h).
#include "alloc/run.h"

namespace strata::internal {

bool Run::HasFreeBlock(const void* p, uint32_t capacity) const {
  const LinkKey key = GetLinkKey();
  uint32_t steps = 0;
  for (const FreeBlock* b = free_; !IsListEnd(b) && steps <= capacity; ++steps) {
    if (b == p) return true;
    // A link gone out of the run's arena is damage, not a member: stop.
    const FreeBlock* link = NextOf(b, key);
    if (!IsListEnd(link) && !SameArena(b, link)) return false;
    b = link;
  }
  return false;
}

BlockChain Run::CarveChain(char* run_start, uint32_t size, uint32_t capacity, uint32_t n,
                           const LinkKey& key) {
  const uint32_t page = static_cast<uint32_t>(kPoolSize) / size;
  if (n > page) n = page > 0 ? page : 1;
  if (n > capacity - carved_) n = capacity - carved_;
  char* const first = run_start + size_t{carved_} * size;
  // Link first .. first + (n-1)*size in address order, ending at null.
  char* p = first + size_t{n - 1} * size;
  FreeBlock* head = nullptr;
  BlockChain chain;
  chain.last = reinterpret_cast<FreeBlock*>(p);
  for (uint32_t i = 0; i < n; ++i, p -= size) {
    auto* b = reinterpret_cast<FreeBlock*>(p);
    SetLink(b, head, key);
    head = b;
  }
  chain.first = head;
  chain.count = n;
  carved_ += n;
  used_.Add(n);
  return chain;
}

BlockChain Run::TakeList(FreeBlock* list_end) {
  BlockChain chain;
  if (IsListEnd(free_)) return chain;
  // Every carved block is in use or on the list.
  chain.first = free_;
  chain.count = carved_ - Used();
  free_ = list_end;
  used_.Add(chain.count);
  return chain;
}

void Run::SetBias(uint32_t b) {
  const uint32_t in_use = Used();
  bias_.Set(b);
  used_.Set(in_use - b);
}

void Run::Begin(FreeBlock* list_end, uint32_t start, uint32_t magic) {
  free_ = list_end;
  used_.Set(0);
  bias_.Set(0);
  carved_ = 0;
  own_start_ = start;
  own_div_magic_ = magic;
  own_head_bytes_ = 0;
  state_ = RunState::kHeld;
  kept_empty_ = false;
  purged_ = false;
}

void Run::BeginTail(uint16_t head_bytes) { own_head_bytes_ = head_bytes; }

void Run::BecomeCurrent() {
  state_ = RunState::kCurrent;
  SetBias(0u - kCurrentBias);
}

void Run::FallAsleep(uint32_t capacity) {
  // Spent: every block is in use. It sleeps until WakeFrees(capacity) of
  // them come back.
  state_ = RunState::kAsleep;
  SetBias(capacity - WakeFrees(capacity));
}

void Run::Demote() {
  state_ = RunState::kHeld;
  SetBias(0);
}

uint32_t Run::Wake() {
  // used_ counted down to zero: the true count is the bias.
  const uint32_t in_use = Used();
  state_ = RunState::kHeld;
  SetBias(0);
  return in_use;
}

void Run::EnterPartial() { state_ = RunState::kPartial; }

void Run::LeavePartial() { state_ = RunState::kHeld; }

void Run::KeepEmpty(uint32_t now) {
  state_ = RunState::kEmpty;
  kept_empty_ = true;
  free_since_ = now;
}

void Run::MarkPurged() { purged_ = true; }

void Run::LeaveEmpty(bool reuse, FreeBlock* list_end) {
  state_ = RunState::kHeld;
  kept_empty_ = false;
  if (reuse && purged_) {
    // Its pages were given back: they read as zero, the list is gone.
    purged_ = false;
    carved_ = 0;
    free_ = list_end;
  }
}

void Run::Release(uint32_t now) {
  free_ = nullptr;
  used_.Set(0);
  bias_.Set(0);
  carved_ = 0;
  own_start_ = 0;
  own_div_magic_ = 0;
  own_head_bytes_ = 0;
  state_ = RunState::kNone;
  kept_empty_ = false;
  purged_ = false;
  free_since_ = now;
}

FreeBlock* Run::UndoPush(const FreeBlock* last, uint32_t blocks, const LinkKey& key) {
  FreeBlock* first = free_;
  free_ = NextOf(last, key);
  used_.Add(blocks);
  return first;
}

bool Run::IsValid(const RunShape& shape) const {
  if (own_start_ != shape.start || own_div_magic_ != shape.div_magic || own_head_bytes_ != shape.head_bytes) {
    return false;
  }
  if (!shape.head) return carved_ == 0 && state_ == RunState::kNone && !kept_empty_ && !purged_;
  const uint32_t capacity = shape.capacity;
  const uint32_t size = shape.size;
  if (size == 0 || capacity == 0) return false;
  if (carved_ > capacity) return false;
  const uint32_t bias = bias_.Get();
  const uint32_t used = used_.Get();
  switch (state_) {
    case RunState::kCurrent:
      if (bias != 0u - kCurrentBias) return false;
      break;
    case RunState::kAsleep:
      if (bias != capacity - WakeFrees(capacity) || used == 0 || used > WakeFrees(capacity)) return false;
      break;
    case RunState::kPartial:
    case RunState::kEmpty:
      if (bias != 0) return false;
      break;
    case RunState::kHeld:  // transient: never seen at rest
    case RunState::kNone:  // not a head's state
      return false;
  }
  if (kept_empty_ != (state_ == RunState::kEmpty)) return false;
  if (purged_) return state_ == RunState::kEmpty;  // its list went with its pages
  const LinkKey key = GetLinkKey();
  uint32_t free_count = 0;
  for (FreeBlock* b = free_; !IsListEnd(b); b = NextOf(b, key)) {
    if (++free_count > capacity) return false;  // a cycle
    const uintptr_t off = reinterpret_cast<uintptr_t>(b) - reinterpret_cast<uintptr_t>(shape.run_start);
    if (off % size != 0 || off / size >= carved_) return false;
  }
  // A run's list ends at its own arena's base.
  const uintptr_t base = reinterpret_cast<uintptr_t>(this) & ~(kArenaSize - 1);
  if (reinterpret_cast<uintptr_t>(free_) != base && IsListEnd(free_) && free_ != nullptr) return false;
  if (state_ == RunState::kPartial && free_count == 0 && carved_ == capacity) return false;
  const uint32_t in_use = Used();
  if (in_use == 0 && state_ != RunState::kCurrent && state_ != RunState::kEmpty) return false;
  return in_use + free_count + (capacity - carved_) == capacity;
}

}  // namespace strata::internal
