// The free slow path; see free_slow.h.
#include "alloc/foreign_hook.h"
#include "alloc/free_slow.h"

#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/arena.h"
#include "alloc/config.h"
#include "alloc/error.h"
#include "alloc/fast_path.h"
#include "alloc/heap.h"
#include "alloc/heap_profile.h"
#include "alloc/large.h"
#include "alloc/os.h"
#include "alloc/page_map.h"

namespace strata::internal {
namespace {

// A pointer strata does not own: a free may belong to the foreign-free hook
// (memory from before strata took over); anything else is an error.
ABSL_ATTRIBUTE_NOINLINE void ResolveForeign(const void* p, const char* op) {
  const bool is_free = op[0] == 'f' && op[1] == 'r' && op[2] == 'e' && op[3] == 'e';
  if (is_free) {
    if (ForeignFreeHook hook = GetForeignFreeHook()) {
      if (hook(const_cast<void*>(p))) return;
    }
  }
  ReportInvalidFree(p, "pointer was not allocated by strata", op);
}

ABSL_ATTRIBUTE_NOINLINE void FreeLarge(LargeHeader* h, const void* p, const char* op) {
  if (!LargeTryBeginFree(h)) {
    ReportInvalidFree(p, "double free of a large block", op);
    return;
  }
  // A cached mapping is released by the policy's clock: the global pass
  // (and the background thread, started here on first need) must know,
  // or an idle program would keep it resident.
  // A sampled block leaves the live profile (heap_profile.h).
  if (h->sample != nullptr) ProfileFree(h->sample);
  const uint64_t now = os::NowMs();
  if (LargeFree(h, now)) RunGlobalDecay(now, /*released=*/true);
}

// True when block p (of `size` bytes) holds the words of a free block, on a
// run's list or travelling (2^-46 and 2^-40 for program data): the costly
// checks are for those only.
bool HoldsFreeWords(const void* p, size_t size, const LinkKey& key) {
  return LooksFree(p, key) && (LooksOnItsList(p, key) || LooksTravelling(p, size));
}

// A local free the fast path did not finish (or realloc's): the block must
// have been carved, and if it looks free (free_link.h) it is looked for
// where a free block of ours can be: on its run's list, in our queue (which
// is drained first), or still travelling in another thread's batch.
ABSL_ATTRIBUTE_NOINLINE void FreeLocalChecked(Heap* self, PoolDesc* run, void* p, const char* op) {
  if (!ValidateBlock(run, p, run->run.carved())) {
    ReportInvalidFree(p, "pointer is not the start of a block", op);
    return;
  }
  if (HoldsFreeWords(p, run->size, self->link_key())) {
    if (run->HasFreeBlock(p)) {
      ReportInvalidFree(p, "double free (block already free)", op);
      return;
    }
    // Blocks other threads sent back join their lists. A run with a live
    // block is never released: if p's run went, p was free.
    self->DrainRemote();
    run = RunOf(ArenaOf(p), p);
    if (!ValidateBlock(run, p, run->run.carved()) || run->HasFreeBlock(p)) {
      ReportInvalidFree(p, "double free (block already free)", op);
      return;
    }
    if (LooksTravelling(p, run->size)) {
      ReportInvalidFree(p, "double free (block already freed by another thread)", op);
      return;
    }
  }
  self->FreeLocal(run, p);
}

// A block for another heap that looks free (free_link.h) must not be linked
// into a batch: its first word may be the owner's free-list link, or a
// batch's. If it waits in our own batch this is a double free; otherwise the
// owner, who alone may walk its lists, checks it.
ABSL_ATTRIBUTE_NOINLINE void SendLookingFree(Heap* self, Heap* owner, PoolDesc* run, void* p,
                                             const char* op) {
  const bool on_list = LooksOnItsList(p, owner->link_key());
  const bool travelling = !on_list && LooksTravelling(p, run->size);
  // Only the words of a list or batch member can be free (see
  // FreeLocalChecked): program data that merely looks free goes on.
  if (!on_list && !travelling) return self->FreeRemote(p, owner, run->size);
  if (self != &g_empty_heap && self->InOutgoing(owner, p)) {
    ReportInvalidFree(p, "double free (block already freed by this thread)", op);
    return;
  }
  // Reported here, so that it does not wait for the owner's next drain:
  // program data passes these checks with a chance of 2^-46 (a link into
  // the block's own arena) or 2^-80 (two travelling links).
  if (on_list) {
    ReportInvalidFree(p, "double free (block already free)", op);
    return;
  }
  if (run->size >= 2 * sizeof(FreeBlock*)) {
    ReportInvalidFree(p, "double free (block already freed by another thread)", op);
    return;
  }
  // An 8-byte block has one word to judge by (2^-40): its owner checks it.
  if (owner->PushSuspect(p, *static_cast<const uintptr_t*>(p))) return;
  self->FreeLookingFree(p, owner, run->size, op);  // every suspect slot taken
}

// Batches block p of run `run`, validated, to its owner (non-null, not
// self); one that looks free is checked first.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void SendFrom(Heap* self, Heap* owner, PoolDesc* run, void* p,
                                                  const char* op) {
  // The owner's copy of the key: one load each off a pointer we hold.
  if (ABSL_PREDICT_FALSE(LooksFree(p, owner->link_key()))) {
    return SendLookingFree(self, owner, run, p, op);
  }
  self->FreeRemote(p, owner, run->size);
}

// The first free of a thread that has no heap yet: it takes one (which may
// be p's owner itself, an orphan adopted) and frees p by the general path,
// checks and all. Without a heap, p travels alone.
ABSL_ATTRIBUTE_NOINLINE void SendWithoutHeap(Heap* owner, PoolDesc* run, void* p, const char* op) {
  if (AcquireHeapForThread() != nullptr) return FreeSlow(p, op, SIZE_MAX);
  SendFrom(&g_empty_heap, owner, run, p, op);
}

// Sends block p of run `run`, validated, to its owner (non-null, not us).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void SendToOwner(Heap* self, Heap* owner, PoolDesc* run, void* p,
                                                     const char* op) {
  if (ABSL_PREDICT_FALSE(self == &g_empty_heap)) return SendWithoutHeap(owner, run, p, op);
  SendFrom(self, owner, run, p, op);
}

ABSL_ATTRIBUTE_NOINLINE void FreeRemoteChecked(Heap* self, Heap* owner, PoolDesc* run, void* p,
                                               const char* op) {
  if (ABSL_PREDICT_FALSE(owner == nullptr)) {
    ReportInvalidFree(p, "block of an empty arena (double free?)", op);
    return;
  }
  SendToOwner(self, owner, run, p, op);
}

// A remote free that looks free, or a thread without a heap: g_empty_heap's
// link key is zero, so that every block looks free to it and its frees
// come here with the others, off the common path.
ABSL_ATTRIBUTE_NOINLINE void SendUncommon(Heap* self, Heap* owner, PoolDesc* run, void* p,
                                          const char* op) {
  if (self == &g_empty_heap) return SendWithoutHeap(owner, run, p, op);
  SendLookingFree(self, owner, run, p, op);
}

}  // namespace

Resolved Resolve(const void* p, const char* op) {
  void* header = GetPageMap().Lookup(p);
  if (ABSL_PREDICT_FALSE(header == nullptr)) {
    ResolveForeign(p, op);
    return {nullptr, nullptr, nullptr};
  }
  auto* arena = static_cast<ArenaHeader*>(header);
  if (ABSL_PREDICT_FALSE(arena->kind != kArenaKind)) {
    auto* large = static_cast<LargeHeader*>(header);
    if (!IsLargeBlock(large, p)) {
      ReportInvalidFree(p, "pointer is not the start of a live large block", op);
      return {nullptr, nullptr, nullptr};
    }
    return {nullptr, nullptr, large};
  }
  if (!InBlockPool(p)) {
    ReportInvalidFree(p, "pointer is not the start of a block", op);
    return {nullptr, nullptr, nullptr};
  }
  PoolDesc* d = RunOf(arena, p);
  // Only fields that stay fixed while a block of the run lives are read here
  // (start, div_magic, capacity: a free pool's capacity is 0); `carved` is
  // the owner's and is checked on the local path in FreeResolved.
  if (ABSL_PREDICT_FALSE(!ValidateBlock(d, p, d->capacity))) {
    ReportInvalidFree(p, "pointer is not the start of a block", op);
    return {nullptr, nullptr, nullptr};
  }
  return {arena, d, nullptr};
}

void FreeResolved(const Resolved& r, void* p, const char* op) {
  if (ABSL_PREDICT_FALSE(r.large != nullptr)) return FreeLarge(r.large, p, op);
  // Acquire pairs with the release store of owner when the arena was taken.
  Heap* owner = r.arena->owner.load(std::memory_order_acquire);
  Heap* self = tls_heap;
  if (owner == self) return FreeLocalChecked(self, r.run, p, op);
  FreeRemoteChecked(self, owner, r.run, p, op);
}

bool LooksAlreadyFree(const Resolved& r, const void* p) {
  if (r.large != nullptr) {
    // A freed large block whose mapping waits in the large cache still
    // resolves (its header and block are where they were): its state says
    // it is not live. Without this, realloc resized the cached block in
    // place and handed it out while the cache could hand it out again.
    // Relaxed: the program's own hand-off orders its free before this call
    // (as for offset and usable, large.h).
    return r.large->state.load(std::memory_order_relaxed) != LargeHeader::kLive;
  }
  return HoldsFreeWords(p, r.run->size, GetLinkKey());
}

size_t UsableResolved(const Resolved& r) {
  return r.large != nullptr ? r.large->ProgramUsable() : r.run->size;
}

namespace {

// A block of another heap's arena (owner != self, read from the arena): the
// fast path's checks, against a run we may only read the shape of (it does
// not change while a block of it lives; a free pool has capacity 0, so
// nothing in it passes), then batched to its owner. Only tail calls. A
// function apart from FreeUncached, whose local path must not pay for the
// callee-saved registers the inlined push needs; FreeUncached's arguments
// come first, in the same registers, so the call moves none of them.
ABSL_ATTRIBUTE_NOINLINE void FreeToOwner(Heap* self, void* p, size_t max_size, const char* op,
                                         Heap* owner, ArenaHeader* arena) noexcept {
  const uintptr_t desc_offset = DescOffset(p);
  if (ABSL_PREDICT_FALSE(desc_offset == 0 || owner == nullptr)) return FreeSlow(p, op, max_size);
  PoolDesc* d = reinterpret_cast<PoolDesc*>(arena->Base() + desc_offset)->Head();
  if (ABSL_PREDICT_FALSE(!ValidateBlock(d, p, d->capacity) ||
                         (max_size != SIZE_MAX && !SizedFreeFits(d->size, max_size)))) {
    return FreeSlow(p, op, max_size);
  }
  // Every heap but g_empty_heap holds the owner's key.
  if (ABSL_PREDICT_FALSE(LooksFree(p, self->link_key()))) return SendUncommon(self, owner, d, p, op);
  self->BatchRemote(p, owner, d->size);
}

}  // namespace

void FreeUncached(Heap* self, void* p, size_t max_size, const char* op) noexcept {
  // Null, foreign memory and large blocks are not in an arena.
  if (ABSL_PREDICT_FALSE(!GetPageMap().InArena(p))) return FreeSlow(p, op, max_size);
  ArenaHeader* arena = ArenaOf(p);
  // Acquire pairs with the release store of owner when the arena changed
  // hands. Only an arena we own may enter our cache.
  Heap* owner = arena->owner.load(std::memory_order_acquire);
  if (owner == self) {
    self->ArenaCacheSlot(reinterpret_cast<uintptr_t>(p)) = reinterpret_cast<uintptr_t>(arena);
    return FreeOwned(self, p, max_size, op);
  }
  FreeToOwner(self, p, max_size, op, owner, arena);
}

void FreeSlow(void* p, const char* op, size_t max_size) noexcept {
  if (p == nullptr) return;
  const Resolved r = Resolve(p, op);
  if (!r.ok()) return;
  // A sized free: the size must be one the block could have been
  // allocated with (size_class.h, SizedFreeFits).
  const size_t usable = UsableResolved(r);
  if (ABSL_PREDICT_FALSE(max_size != SIZE_MAX && !SizedFreeFits(usable, max_size))) {
    ReportInvalidFree(
        p, max_size > usable ? "size is larger than the block" : "size is too small for the block", op);
    return;
  }
  FreeResolved(r, p, op);
}

}  // namespace strata::internal
