// The misuse table's messages, the reports, and the judgments that read a
// block's words (misuse.h).
#include "alloc/misuse.h"

#include "alloc/error.h"
#include "alloc/reentry.h"

namespace strata::internal {
namespace {

constexpr const char* kMessages[] = {
#define STRATA_MISUSE_MESSAGE(name, message) message,
    STRATA_MISUSE_LIST(STRATA_MISUSE_MESSAGE)
#undef STRATA_MISUSE_MESSAGE
};

}  // namespace

const char* MisuseMessage(Misuse m) { return kMessages[static_cast<size_t>(m)]; }

// Inside a signal handler that interrupted strata, what looks wrong may be
// the interrupted operation's half-done work: that is reported instead.
void ReportMisuse(const void* p, Misuse m, const char* op, const ReportDetail* detail) {
  if (InterruptedStrataBySignal()) ReportReentry();
  ReportInvalidFree(p, MisuseMessage(m), op, detail);
}

void ReportDamage(const void* p, Misuse m) {
  if (InterruptedStrataBySignal()) ReportReentry();
  ReportCorruption(p, MisuseMessage(m));
}

bool LooksTravelling(const void* p, size_t size) {
  const LinkKey key = GetLinkKey();
  auto* b = static_cast<FreeBlock*>(const_cast<void*>(p));
  if (!LinkTargetIsStrata(NextOf(b, key))) return false;
  if (size < 2 * sizeof(FreeBlock*)) return true;
  // A segment never leaves its run: its last block is in p's arena, and it
  // is no longer than a run of p's size holds.
  const Segment seg = SegmentOf(b, key);
  return seg.blocks != 0 && seg.blocks <= kClasses[SizeToClass(size)].blocks && SameArena(b, seg.last) &&
         InBlockPool(seg.last);
}

size_t SuspectSlots::BlockSize(const void* p) {
  return kClasses[RunOf(ArenaOf(p), p)->size_class].size;
}

bool SuspectSlots::Push(void* p, uintptr_t word) {
  for (size_t i = 0; i < kSlots; ++i) {
    void* empty = nullptr;
    // Acquire pairs with the owner's release store of null in TakeEach():
    // its read of the slot's previous word is done before we overwrite it.
    if (!slots_[i].compare_exchange_strong(empty, kClaimed, std::memory_order_acquire,
                                           std::memory_order_relaxed)) {
      continue;
    }
    words_[i].store(word, std::memory_order_relaxed);  // published by the store below
    // Relaxed: statistics only.
    bytes_.fetch_add(static_cast<int64_t>(BlockSize(p)), std::memory_order_relaxed);
    // Release pairs with the owner's acquire load of the slot in TakeEach():
    // it sees the word (and the program's writes before the free).
    slots_[i].store(p, std::memory_order_release);
    // Release pairs with the acquire exchange in TakeEach(): the owner looks
    // at the slots again.
    has_.store(true, std::memory_order_release);
    return true;
  }
  return false;
}

ParkedVerdict JudgeParked(const PoolDesc* run, const void* p, uintptr_t word) {
  // A block whose first word changed since it was parked was not the
  // freeing thread's to free: it was free here then, and handed out (or
  // taken apart) since. One that is on no list, unchanged and not
  // travelling was live: its data only looked free.
  if (!ValidateBlock(run, p, run->run.carved()) || run->HasFreeBlock(p) ||
      reinterpret_cast<uintptr_t>(LoadWord(static_cast<const FreeBlock*>(p))) != word || LooksCached(p, run->size, GetLinkKey())) {
    return ParkedVerdict::kDoubleFree;
  }
  if (LooksTravelling(p, run->size)) return ParkedVerdict::kDoubleFreeRemote;
  return ParkedVerdict::kLive;
}

}  // namespace strata::internal
