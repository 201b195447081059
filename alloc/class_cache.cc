// A heap's per-class lists: the slow path's side (class_cache.h).
#include "alloc/class_cache.h"

#include "alloc/arena.h"

namespace strata::internal {

void ClassCache::Settle(size_t cls) {
  length_[cls].Set(Length(cls));
  left_base_[cls].Set(left_[cls].Get());
  room_base_[cls].Set(room_[cls].Get());
}

int32_t ClassCache::UndoPop(size_t cls) { return left_[cls].Add(1); }

void ClassCache::UndoPush(size_t cls) { room_[cls].Add(1); }

void* ClassCache::PopSlow(size_t cls, const LinkKey& key) {
  Settle(cls);
  FreeBlock* b = head_[cls];
  if (IsListEnd(b)) return nullptr;
  head_[cls] = NextOf(b, key);
  ClearFreeWords(cls, b);
  length_[cls].Sub(1);
  return b;
}

uint32_t ClassCache::Drop(size_t cls) {
  Settle(cls);
  const uint32_t n = length_[cls].Get();
  head_[cls] = nullptr;
  length_[cls].Set(0);
  return n;
}

void ClassCache::PushSlow(size_t cls, void* p, const LinkKey& key) {
  Settle(cls);
  auto* b = static_cast<FreeBlock*>(p);
  Link(cls, b, head_[cls], key);
  head_[cls] = b;
  length_[cls].Add(1);
}

void ClassCache::PushAndSetRoom(size_t cls, void* p, const LinkKey& key) {
  Settle(cls);
  auto* b = static_cast<FreeBlock*>(p);
  Link(cls, b, head_[cls], key);
  head_[cls] = b;
  length_[cls].Add(1);
  ArmRoom(cls);
}

void ClassCache::Add(size_t cls, const BlockChain& c, const LinkKey& key) {
  if (c.count == 0) return;
  Settle(cls);
  if (!IsListEnd(head_[cls])) SetLink(c.last, head_[cls], key);
  head_[cls] = c.first;
  length_[cls].Add(c.count);
}

BlockChain ClassCache::Take(size_t cls, uint32_t n, const LinkKey& key) {
  Settle(cls);
  BlockChain c;
  FreeBlock* b = head_[cls];
  if (IsListEnd(b) || n == 0) return c;
  c.first = b;
  c.count = 1;
  FreeBlock* next = WalkNext(b, key);
  while (c.count < n && !IsListEnd(next)) {
    b = next;
    next = WalkNext(b, key);
    ++c.count;
  }
  SetLink(b, nullptr, key);
  c.last = b;
  head_[cls] = next;
  // (A damaged link ends the walk and the list with it.)
  length_[cls].Set(IsListEnd(next) ? 0 : length_[cls].Get() - c.count);
  return c;
}

BlockChain ClassCache::TakeAfter(size_t cls, uint32_t keep, const LinkKey& key) {
  if (keep == 0) return Take(cls, UINT32_MAX, key);
  Settle(cls);
  BlockChain c;
  FreeBlock* b = head_[cls];
  uint32_t kept = 1;
  for (; kept < keep && !IsListEnd(b); ++kept) b = WalkNext(b, key);
  if (IsListEnd(b)) {
    length_[cls].Set(kept - 1);  // a damaged link cut the list short
    return c;
  }
  FreeBlock* rest = WalkNext(b, key);
  SetLink(b, nullptr, key);  // the list ends after its first `keep`
  if (IsListEnd(rest)) {
    length_[cls].Set(keep);
    return c;
  }
  c.first = rest;
  uint32_t n = 1;
  FreeBlock* last = rest;
  for (FreeBlock* next = WalkNext(last, key); !IsListEnd(next); next = WalkNext(last, key)) {
    last = next;
    ++n;
  }
  SetLink(last, nullptr, key);
  c.last = last;
  c.count = n;
  length_[cls].Set(keep);
  return c;
}

bool ClassCache::Contains(size_t cls, const void* p, const LinkKey& key) const {
  uint32_t steps = 0;
  const uint32_t length = Length(cls);
  for (const FreeBlock* b = head_[cls]; !IsListEnd(b) && steps <= length; ++steps) {
    if (b == p) return true;
    const FreeBlock* next = NextOf(b, key);
    // A link damaged by a write after free is not followed (a pop reports it).
    if (!IsListEnd(next) && !LinkTargetIsStrata(next)) return false;
    b = next;
  }
  return false;
}

void ClassCache::SetCountdown(size_t cls, int32_t blocks) {
  Settle(cls);
  left_[cls].Set(blocks);
  left_base_[cls].Set(blocks);
}

void ClassCache::SetRoom(size_t cls) {
  Settle(cls);
  ArmRoom(cls);
}

void ClassCache::ArmRoom(size_t cls) {
  const uint32_t max = CacheMaxBlocks(kClasses[cls].size);
  const uint32_t length = length_[cls].Get();
  const int32_t room = length < max ? static_cast<int32_t>(max - length) + 1 : 1;
  room_[cls].Set(room);
  room_base_[cls].Set(room);
}

uint64_t ClassCache::CachedBytes() const {
  uint64_t bytes = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls) bytes += uint64_t{Length(cls)} * kClasses[cls].size;
  return bytes;
}

bool ClassCache::IsValid(const LinkKey& key) const {
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const uint32_t length = Length(cls);
    uint32_t n = 0;
    for (const FreeBlock* b = head_[cls]; !IsListEnd(b); b = NextOf(b, key)) {
      if (++n > length) return false;  // longer than counted (or a cycle)
      // A block of a run of class cls (the owner's arenas are mapped).
      ArenaHeader* arena = ArenaOf(b);
      if (!InBlockPool(b) || RunOf(arena, b)->size_class != cls) return false;
    }
    if (n != length) return false;
  }
  for (size_t n = 0; n <= kLowTableMax; ++n) {
    if (class_of_[n] != kLowClassTable[(n + kSmallStep - 1) / kSmallStep]) return false;
  }
  return true;
}

}  // namespace strata::internal
