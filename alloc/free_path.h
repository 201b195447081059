// The free path, in call order: from the entry points (free, operator
// delete, strata::Deallocate and their sized and aligned forms) to the block
// on its run's list (a local free), in its outgoing batch (a remote free:
// another thread's block), or reported (misuse.h). Everything but the
// common local free is out of line; all of it is here, top to bottom, as
// mimalloc's free.c reads. The cross-thread variants all carry "Remote".
//
//   FreeFast(p)                      inline: the arena cache knows p's pool:
//                                    p's class, and "ours"
//     FreeInClass(self, cls, p)      inline: checks (checks.h) ->
//                                    ClassCache::TryPush onto its class's
//                                    list; rare -> Heap::FreeToCacheSlow (a
//                                    double free at the list's head; an
//                                    overfull list gives its older half
//                                    back: FreeToRun)
//   FreeUncached(p, self)            not in the cache: the arena cache or the
//                                    page map; our arena -> the pool's class
//                                    remembered, FreeInClass; another heap's ->
//     FreeRemote(self, p, owner)     the shape's checks -> BatchRemote
//                                    (outgoing_batches.h -> the owner's
//                                    IncomingQueue -> Heap::DrainRemote ->
//                                    FreeToRun, heap.cc)
//       FreeRemoteUncommon           a block that looks free, or a thread with
//                                    no heap yet (ThreadHeapIfAny decides)
//         FreeRemoteWithoutHeap      the thread gets a heap, or p goes alone
//         FreeRemoteLookingFree      a second free? (misuse.h's predicates)
//   FreeSlow(p)                      anything else: null, foreign memory,
//                                    large and guarded blocks, sized-free
//                                    mismatches, blocks that look free
//                                    (checked here)
//     Resolve -> FreeResolved -> FreeLarge | GuardedFree (guarded.h) |
//                                FreeLocalChecked | FreeRemoteChecked
// The out-of-line steps a guarded block's free passes through (FreeUncached,
// FreeSlow, FreeResolved) are in the inline entry section (config.h), so
// that the free's stack, captured below them, starts at the program.
#ifndef STRATA_ALLOC_FREE_PATH_H_
#define STRATA_ALLOC_FREE_PATH_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/arena.h"
#include "alloc/config.h"
#include "alloc/foreign_hook.h"
#include "alloc/free_link.h"
#include "alloc/guarded.h"
#include "alloc/heap.h"
#include "alloc/heap_profile.h"
#include "alloc/heap_registry.h"
#include "alloc/large.h"
#include "alloc/misuse.h"
#include "alloc/page_map.h"
#include "alloc/size_class.h"
#include "threading/owner_lock.h"

namespace strata::internal {

// Whether FreeUncached keeps and asks the pool cache's second level: not
// where every free loads its block's descriptor anyway (kCheckBlockStart).
inline constexpr bool kPoolCacheSecondLevel = !kCheckBlockStart;

// The out-of-line steps, defined below in call order. `op` names the entry
// point for messages; `max_size` is the size a sized free says it
// allocated (SIZE_MAX: unsized).
// (Declared ahead so that the file reads in call order; each is defined
// below, inline and noinline: one out-of-line copy shared by every includer.)
void FreeUncached(void* p, Heap* self, size_t max_size, const char* op) noexcept;
void FreeRemote(Heap* self, void* p, size_t max_size, const char* op, Heap* owner, ArenaHeader* arena) noexcept;
void FreeSlow(void* p, const char* op, size_t max_size) noexcept;

// ---- 1. The local free -------------------------------------------------

// A local free: block p of class cls onto its list in self's class cache.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void FreeToCache(Heap* self, size_t cls, void* p, const char* op) noexcept {
  if (ABSL_PREDICT_FALSE(!self->cache().TryPush(cls, p, self->link_key()))) Heap::FreeToCacheSlow(p, self, cls, op);
}

// A block of self's back on its run `run`: on the run's list, counted
// (run.h). The drain of blocks other threads sent back and a class cache
// giving blocks back come here; the program's own frees go to the class
// cache (FreeInClass).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void FreeToRun(Heap* self, PoolDesc* run, void* p) noexcept {
  if (run->run.Push(static_cast<FreeBlock*>(p), self->link_key())) self->FreeLocalSlow(run);
}

// A segment of blocks of self's run `run` (first..last, `blocks` of them,
// linked in order) back on the run's list at once: one splice, one count
// update (run.h). The drain of blocks other threads sent back comes here.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void FreeSegmentToRun(Heap* self, PoolDesc* run, FreeBlock* first,
                                                          FreeBlock* last, uint32_t blocks) noexcept {
  if (run->run.PushSegment(first, last, blocks, self->link_key())) self->FreeLocalSlow(run, last, blocks);
}

// Block p lies in a pool of a run of class cls of self's: p goes onto its
// class's list in self's class cache. The default build checks only what
// it can without loading p or multiplying: a sized free's size fits the
// class; the checked build also that p is a carved block start of its run
// and does not look free already (kCheckBlockStart, kCheckFreedBlock).
// Anything else goes to FreeSlow, which reports it.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void FreeInClass(Heap* self, size_t cls, void* p, size_t max_size,
                                                     const char* op) noexcept {
  if (max_size != SIZE_MAX && ABSL_PREDICT_FALSE(!SizedFreeFits(self->cache().ClassSize(cls), max_size))) {
    return FreeSlow(p, op, max_size);
  }
  if constexpr (kCheckBlockStart) {
    // The run's owner line only (Run's copies of the shape).
    const PoolDesc* d = reinterpret_cast<PoolDesc*>(ArenaOf(p)->Base() + DescOffset(p))->OwnHead();
    if (ABSL_PREDICT_FALSE(!d->run.HoldsCarved(p))) return FreeSlow(p, op, max_size);
  }
  if constexpr (kCheckFreedBlock) {
    // A block on a free list, in a class cache or travelling back from
    // another thread looks free (free_link.h): the slow path confirms and
    // reports it.
    FreeBlock* const seen = LoadWord(static_cast<FreeBlock*>(p));
    if (ABSL_PREDICT_FALSE(WordLooksFree(p, seen, self->link_key()))) return FreeSlow(p, op, max_size);
    // The claim (free_link.h): a free of p by another thread at this
    // instant either loses it or finds p looking free.
    if (ABSL_PREDICT_FALSE(!ClaimBlock(p, seen, self->link_key()))) {
      return ReportMisuse(p, Misuse::kDoubleFreeRace, op);
    }
  }
  FreeToCache(self, cls, p, op);
}

// Every free starts here. max_size: the size the caller says it allocated
// (sized free), or SIZE_MAX; op: the entry point's name, for messages.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void FreeFast(void* p, size_t max_size = SIZE_MAX,
                                                  const char* op = "free") noexcept {
  Heap* self = tls_heap;
  // A hit gives p's class and proves that p lies in a run of an arena this
  // heap owns (so it is strata's, not null, not foreign, not large, not in
  // a free pool or a header): no page-map lookup, no owner load, no
  // descriptor.
  size_t cls;
  if (ABSL_PREDICT_FALSE(!self->arena_cache().PoolClass(p, &cls))) return FreeUncached(p, self, max_size, op);
  FreeInClass(self, cls, p, max_size, op);
}

// p's pool is not in the first level of self's pool cache: the arena
// cache, or else the page map, says whether p lies in an arena of self's
// at all (another heap's block is a remote free); then the pool cache's
// second level, or else p's pool descriptor, gives its class (0: a free
// pool, the header's pools), which the cache remembers.
// (p comes first, in the register it arrived in: the fast path moves
// nothing before its tail calls.)
STRATA_ENTRY_INLINE ABSL_ATTRIBUTE_NOINLINE inline void FreeUncached(void* p, Heap* self, size_t max_size,
                                                              const char* op) noexcept {
  size_t cls;
  ArenaHeader* arena = ArenaOf(p);
  if (self->arena_cache().Holds(p)) {
    // The pool cache's second level (it knows pools of arenas we own only,
    // so a remote free does not look): as a first-level hit (arena_cache.h).
    // Not in the checked build, whose FreeInClass loads p's descriptor
    // anyway (kCheckBlockStart): the descriptor gives the class, and the
    // second level's line would be one more miss (larson: 9 % of the
    // checked build's FreeUncached samples sat on that load).
    if constexpr (kPoolCacheSecondLevel) {
      if (self->arena_cache().PoolClassSlow(p, &cls)) return FreeInClass(self, cls, p, max_size, op);
    }
  } else {
    // Null, foreign memory and large blocks are not in an arena.
    if (ABSL_PREDICT_FALSE(!GetPageMap().InArena(p))) return FreeSlow(p, op, max_size);
    // Acquire pairs with the release store of owner when the arena changed
    // hands. Only an arena we own may enter our cache.
    Heap* owner = arena->owner.load(std::memory_order_acquire);
    if (owner != self) return FreeRemote(self, p, max_size, op, owner, arena);
    self->arena_cache().Remember(arena);
  }
  // Pool 0's descriptor slot is the header, whose size-class byte reads 0
  // (kHeaderReadsAsNoClass); pool 1's descriptor is zero; a free pool's
  // class is 0: none of them holds a block.
  cls = reinterpret_cast<const PoolDesc*>(arena->Base() + DescOffset(p))->size_class;
  if (ABSL_PREDICT_FALSE(cls == 0)) return FreeSlow(p, op, max_size);
  self->arena_cache().RememberPool(p, cls, /*second_level=*/kPoolCacheSecondLevel);
  FreeInClass(self, cls, p, max_size, op);
}

// ---- 2. The remote free: a block of another heap's arena -----------------

// Links p (a block of run `run`, checked), freed by self's thread, into
// self's outgoing batch for heap `owner` != self: the remote free's common
// path, inlined, no call (outgoing_batches.h; the batch reaches the owner's
// IncomingQueue, and its drain in heap.cc splices p's segment onto its
// run's list).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void BatchRemote(Heap* self, Heap* owner, void* p, const PoolDesc* run) {
  self->outgoing().Push(p, run, &owner->incoming(), owner->entry().id(), run->size);
}

// Hands p (a block of `run`, checked, judged live from its first word
// `seen`) to `owner`: claimed (free_link.h), then batched by `self`, or
// alone when the thread has no heap (self null). A lost claim is reported.
inline void SendRemote(Heap* self, Heap* owner, void* p, const PoolDesc* run, FreeBlock* seen, const char* op) {
  if (ABSL_PREDICT_FALSE(!ClaimJudgedBlock(p, seen, owner->link_key()))) {
    return ReportMisuse(p, Misuse::kDoubleFreeRace, op);
  }
  if (ABSL_PREDICT_FALSE(self == nullptr)) {
    owner->incoming().PushOne(static_cast<FreeBlock*>(p), run->size);
    return;
  }
  BatchRemote(self, owner, p, run);
}

// A block that looks free and that its owner cannot check (every suspect
// slot taken): reported when its words are those of a travelling block or
// of a block on its run's list, else sent (claimed from its first word
// `seen`).
ABSL_ATTRIBUTE_NOINLINE inline void FreeRemoteUnjudged(Heap* self, Heap* owner, const PoolDesc* run, void* p,
                                                       FreeBlock* seen, const char* op) {
  if (LooksTravelling(p, run->size)) return ReportMisuse(p, Misuse::kDoubleFreeRemote, op);
  if (LooksOnItsList(p, owner->link_key()) || LooksCached(p, run->size, owner->link_key())) {
    return ReportMisuse(p, Misuse::kDoubleFree, op);
  }
  SendRemote(self, owner, p, run, seen, op);
}

// A block for another heap that looks free (free_link.h) must not be linked
// into a batch: its first word may be the owner's free-list link, or a
// batch's. If it waits in our own batch this is a double free; otherwise the
// owner, who alone may walk its lists, checks it. `self` is null for a
// thread without a heap.
ABSL_ATTRIBUTE_NOINLINE inline void FreeRemoteLookingFree(Heap* self, Heap* owner, PoolDesc* run, void* p,
                                                          const char* op) {
  // The word judged, which a send claims from (a claim mark, another free
  // under way, looks on its list).
  FreeBlock* const seen = LoadWord(static_cast<FreeBlock*>(p));
  // On its run's list or in its owner's class cache, or travelling.
  const bool on_list = LooksOnItsList(p, owner->link_key()) || LooksCached(p, run->size, owner->link_key());
  const bool travelling = !on_list && LooksTravelling(p, run->size);
  // Only the words of a list or batch member can be free (see
  // FreeLocalChecked): program data that merely looks free goes on.
  if (!on_list && !travelling) return SendRemote(self, owner, p, run, seen, op);
  if (self != nullptr &&
      self->outgoing().Contains(&owner->incoming(), owner->entry().id(), p)) {
    return ReportMisuse(p, Misuse::kDoubleFreeHere, op);
  }
  // Reported here, so that it does not wait for the owner's next drain:
  // program data passes these checks with a chance of 2^-46 (a link into
  // the block's own arena), 2^-64 (a cached block's second word) or 2^-80
  // (a travelling block's two words).
  if (on_list) return ReportMisuse(p, Misuse::kDoubleFree, op);
  if (run->size >= 2 * sizeof(FreeBlock*)) return ReportMisuse(p, Misuse::kDoubleFreeRemote, op);
  // An 8-byte block has one word to judge by (2^-40): its owner checks it.
  if (owner->incoming().suspects().Push(p, reinterpret_cast<uintptr_t>(seen))) return;
  FreeRemoteUnjudged(self, owner, run, p, seen, op);  // every suspect slot taken
}

// The first free of a thread that has no heap yet: it takes one (which may
// be p's owner itself, an orphan adopted) and frees p by the general path,
// checks and all. Without a heap, p travels alone.
ABSL_ATTRIBUTE_NOINLINE inline void FreeRemoteWithoutHeap(Heap* owner, PoolDesc* run, void* p,
                                                          const char* op) {
  if (ThreadHeap() != nullptr) return FreeSlow(p, op, SIZE_MAX);
  // (The default build reads no freed block.)
  FreeBlock* const seen = kCheckFreedBlock ? LoadWord(static_cast<FreeBlock*>(p)) : nullptr;
  if (kCheckFreedBlock && WordLooksFree(p, seen, owner->link_key())) {
    return FreeRemoteLookingFree(nullptr, owner, run, p, op);
  }
  SendRemote(nullptr, owner, p, run, seen, op);
}

// A remote free that looks free, or a thread without a heap: g_empty_heap's
// link key is zero, so that every block looks free to it and its frees
// come here with the others, off the common path.
ABSL_ATTRIBUTE_NOINLINE inline void FreeRemoteUncommon(Heap* self, Heap* owner, PoolDesc* run, void* p,
                                                       const char* op) {
  if (ThreadHeapIfAny() == nullptr) return FreeRemoteWithoutHeap(owner, run, p, op);
  FreeRemoteLookingFree(self, owner, run, p, op);
}

// A block of another heap's arena (owner != self, read from the arena): the
// fast path's checks, against a run we may only read the shape of (it does
// not change while a block of it lives; a free pool has class 0 and
// capacity 0, so nothing in it passes), then batched to its owner. Only tail calls. A
// function apart from FreeUncached, whose local path must not pay for the
// callee-saved registers the inlined push needs; FreeUncached's arguments
// come first, in the same registers, so the call moves none of them.
ABSL_ATTRIBUTE_NOINLINE inline void FreeRemote(Heap* self, void* p, size_t max_size, const char* op,
                                               Heap* owner, ArenaHeader* arena) noexcept {
  // (No SlowPathGuard, as on the fast paths: the remote free's push is the
  // producer side's fast path, and a guard's destructor costs its tail calls,
  // 13 instructions of ~60 on xmalloc-test; a handler's remote free that
  // interrupts one is not detected: README, "Signal handlers".)
  const uintptr_t desc_offset = DescOffset(p);
  if (ABSL_PREDICT_FALSE(desc_offset == 0 || owner == nullptr)) return FreeSlow(p, op, max_size);
  PoolDesc* d = reinterpret_cast<PoolDesc*>(arena->Base() + desc_offset)->Head();
  // The checked build: p is a block start of the run (a multiply). Both: p
  // lies in a run at all (a free pool's and pool 1's class is 0), and a
  // sized free's size fits.
  const bool in_run = kCheckBlockStart ? ValidateBlock(d, p, d->capacity) : d->size_class != 0;
  if (ABSL_PREDICT_FALSE(!in_run || (max_size != SIZE_MAX && !SizedFreeFits(d->size, max_size)))) {
    return FreeSlow(p, op, max_size);
  }
  if constexpr (kCheckFreedBlock) {
    // Every heap but g_empty_heap holds the owner's key; g_empty_heap's is
    // zero, so that every block looks free to a thread with no heap yet.
    FreeBlock* const seen = LoadWord(static_cast<FreeBlock*>(p));
    if (ABSL_PREDICT_FALSE(WordLooksFree(p, seen, self->link_key()))) {
      return FreeRemoteUncommon(self, owner, d, p, op);
    }
    // The claim (free_link.h), before p joins a batch.
    if (ABSL_PREDICT_FALSE(!ClaimBlock(p, seen, self->link_key()))) {
      return ReportMisuse(p, Misuse::kDoubleFreeRace, op);
    }
  } else {
    // self is the thread's tls_heap (FreeFast): g_empty_heap until it has one.
    if (ABSL_PREDICT_FALSE(self == &g_empty_heap)) return FreeRemoteWithoutHeap(owner, d, p, op);
  }
  BatchRemote(self, owner, p, d);
}

// ---- 3. The general path -----------------------------------------------

// What a pointer resolves to, after validation.
struct Resolved {
  ArenaHeader* arena;  // null for a large or guarded block (or when invalid)
  PoolDesc* run;       // arena only
  LargeHeader* large;  // large only
  size_t guarded_usable = 0;  // a guarded block's usable size (guarded.h); 0: not guarded
  bool ok() const { return arena != nullptr || large != nullptr || guarded_usable != 0; }
};

// A pointer strata does not own: a free may belong to the foreign-free hook
// (memory from before strata took over); anything else is an error.
ABSL_ATTRIBUTE_NOINLINE inline void ResolveForeign(const void* p, const char* op) {
  const bool is_free = op[0] == 'f' && op[1] == 'r' && op[2] == 'e' && op[3] == 'e';
  if (is_free) {
    if (ForeignFreeHook hook = GetForeignFreeHook()) {
      if (hook(const_cast<void*>(p))) return;
    }
  }
  ReportMisuse(p, Misuse::kNotOurs, op);
}

// Resolves p (non-null). An invalid pointer is reported (abort, or in count
// mode a result with ok() false, and the caller does nothing). realloc and
// malloc_usable_size share it.
ABSL_ATTRIBUTE_NOINLINE inline Resolved Resolve(const void* p, const char* op) {
  void* header = GetPageMap().Lookup(p);
  if (ABSL_PREDICT_FALSE(header == nullptr)) {
    ResolveForeign(p, op);
    return {nullptr, nullptr, nullptr};
  }
  auto* arena = static_cast<ArenaHeader*>(header);
  if (ABSL_PREDICT_FALSE(arena->kind != kArenaKind)) {
    if (arena->kind == kGuardedKind) {
      // A live or freed guarded block, judged (and reported) by its slot.
      size_t usable = 0;
      if (!GuardedResolve(p, op, &usable)) return {nullptr, nullptr, nullptr};
      return {nullptr, nullptr, nullptr, usable};
    }
    auto* large = static_cast<LargeHeader*>(header);
    if (!IsLargeBlock(large, p)) {
      ReportMisuse(p, Misuse::kNotLiveLarge, op);
      return {nullptr, nullptr, nullptr};
    }
    return {nullptr, nullptr, large};
  }
  if (!InBlockPool(p)) {
    ReportMisuse(p, Misuse::kNotBlockStart, op);
    return {nullptr, nullptr, nullptr};
  }
  PoolDesc* d = RunOf(arena, p);
  // A pool in no run: its blocks were all freed and the run released (a
  // double free, typically: the checked build keeps such pools from reuse
  // for a while, checks.h kQuarantineReleased).
  if (ABSL_PREDICT_FALSE(d->state == PoolState::kFree)) {
    ReportMisuse(p, Misuse::kFreePool, op);
    return {nullptr, nullptr, nullptr};
  }
  // Only fields that stay fixed while a block of the run lives are read here
  // (start, div_magic, capacity: a free pool's capacity is 0); `carved` is
  // the owner's and is checked on the local path in FreeLocalChecked.
  if (ABSL_PREDICT_FALSE(!ValidateBlock(d, p, d->capacity))) {
    ReportMisuse(p, Misuse::kNotBlockStart, op);
    return {nullptr, nullptr, nullptr};
  }
  return {arena, d, nullptr};
}

// The usable size of a block Resolve() accepted.
inline size_t UsableResolved(const Resolved& r) {
  if (r.guarded_usable != 0) return r.guarded_usable;
  return r.large != nullptr ? r.large->ProgramUsable() : r.run->size;
}

ABSL_ATTRIBUTE_NOINLINE inline void FreeLarge(LargeHeader* h, const void* p, const char* op) {
  if (!LargeTryBeginFree(h)) return ReportMisuse(p, Misuse::kDoubleFreeLarge, op);
  // A sampled block leaves the live profile (heap_profile.h).
  if (h->sample != nullptr) ProfileFree(h->sample);
  // A cached mapping is released by the policy's clock: the global pass
  // (and the background thread, started here on first need) must know,
  // or an idle program would keep it resident.
  const uint64_t now = os::NowMs();
  if (LargeFree(h, now)) RunGlobalDecay(now, /*released=*/true);
}

// FreeLocalChecked's judgement, under the slow lock: nothing, or the misuse
// to report (*run_io: p's run, found again after a drain). `seen`: p's
// first word when the free began (the checked build's).
inline std::optional<Misuse> JudgeLocalFree(Heap* self, PoolDesc** run_io, void* p, FreeBlock* seen) {
  PoolDesc* run = *run_io;
  if (!ValidateBlock(run, p, run->run.carved())) return Misuse::kNotBlockStart;
  // Another free of p is linking it (free_link.h, the claim).
  if (kClaimFreedBlock && seen == ClaimMark(p, self->link_key())) return Misuse::kDoubleFreeRace;
  // (The default build's blocks hold plain links: nothing to judge by.)
  if (kCheckFreedBlock && HoldsFreeWords(p, run->size, self->link_key())) {
    if (self->cache().Contains(run->size_class, p, self->link_key()) || run->HasFreeBlock(p)) {
      return Misuse::kDoubleFree;
    }
    // Blocks other threads sent back join their lists. A run with a live
    // block is never released: if p's run went, p was free.
    self->DrainRemote();
    run = RunOf(ArenaOf(p), p);
    *run_io = run;
    if (!ValidateBlock(run, p, run->run.carved()) || run->HasFreeBlock(p)) return Misuse::kDoubleFree;
    if (LooksTravelling(p, run->size)) return Misuse::kDoubleFreeRemote;
  }
  return std::nullopt;
}

// A local free the fast path did not finish (or realloc's): the block must
// have been carved, and if it looks free (free_link.h) it is looked for
// where a free block of ours can be: on its run's list, in our queue (which
// is drained first), or still travelling in another thread's batch.
// The checks read the run's owner line and may drain the queue: under the
// heap's slow lock (heap.h), released before the push (whose own slow path
// takes it again).
// The block is claimed (free_link.h) from the word the judgement began
// with: a word changed meanwhile is another free's.
ABSL_ATTRIBUTE_NOINLINE inline void FreeLocalChecked(Heap* self, PoolDesc* run, void* p, const char* op) {
  // (The default build reads no freed block.)
  FreeBlock* const seen = kCheckFreedBlock ? LoadWord(static_cast<FreeBlock*>(p)) : nullptr;
  std::optional<Misuse> found;
  {
    threading::OwnerLockHolder hold(&self->slow_lock_);
    found = JudgeLocalFree(self, &run, p, seen);
  }
  if (ABSL_PREDICT_FALSE(found.has_value())) return ReportMisuse(p, *found, op);
  if (ABSL_PREDICT_FALSE(!ClaimJudgedBlock(p, seen, self->link_key()))) {
    return ReportMisuse(p, Misuse::kDoubleFreeRace, op);
  }
  FreeToCache(self, run->size_class, p, op);
}

// A block of another heap's arena, by the general path: a block of an empty
// arena is already free; otherwise as FreeRemote's uncommon cases.
ABSL_ATTRIBUTE_NOINLINE inline void FreeRemoteChecked(Heap* self, Heap* owner, PoolDesc* run, void* p,
                                                      const char* op) {
  if (ABSL_PREDICT_FALSE(owner == nullptr)) return ReportMisuse(p, Misuse::kEmptyArena, op);
  if (ABSL_PREDICT_FALSE(ThreadHeapIfAny() == nullptr)) return FreeRemoteWithoutHeap(owner, run, p, op);
  // The owner's copy of the key: one load each off a pointer we hold.
  // (The default build reads no freed block.)
  FreeBlock* const seen = kCheckFreedBlock ? LoadWord(static_cast<FreeBlock*>(p)) : nullptr;
  if (kCheckFreedBlock && ABSL_PREDICT_FALSE(WordLooksFree(p, seen, owner->link_key()))) {
    return FreeRemoteLookingFree(self, owner, run, p, op);
  }
  SendRemote(self, owner, p, run, seen, op);
}

// Frees p, which Resolve() accepted, locally or to its owner.
STRATA_ENTRY_INLINE ABSL_ATTRIBUTE_NOINLINE inline void FreeResolved(const Resolved& r, void* p, const char* op) {
  if (ABSL_PREDICT_FALSE(r.large != nullptr)) return FreeLarge(r.large, p, op);
  if (ABSL_PREDICT_FALSE(r.guarded_usable != 0)) return GuardedFree(p, op);
  // Acquire pairs with the release store of owner when the arena was taken.
  Heap* owner = r.arena->owner.load(std::memory_order_acquire);
  Heap* self = tls_heap;
  if (owner == self) return FreeLocalChecked(self, r.run, p, op);
  FreeRemoteChecked(self, owner, r.run, p, op);
}

STRATA_ENTRY_INLINE ABSL_ATTRIBUTE_NOINLINE inline void FreeSlow(void* p, const char* op, size_t max_size) noexcept {
  if (p == nullptr) return;
  const Resolved r = Resolve(p, op);
  if (!r.ok()) return;
  // A sized free: the size must be one the block could have been
  // allocated with (size_class.h, SizedFreeFits).
  const size_t usable = UsableResolved(r);
  if (ABSL_PREDICT_FALSE(max_size != SIZE_MAX && !SizedFreeFits(usable, max_size))) {
    return ReportMisuse(p, max_size > usable ? Misuse::kSizeTooLarge : Misuse::kSizeTooSmall, op);
  }
  FreeResolved(r, p, op);
}

// True when block p, which Resolve() accepted, is free: a small block that
// holds the words of a free block (on a list or travelling; chance for
// program data: 2^-40 or less), or a large block that is not live (in the
// large cache). realloc's in-place paths, which free nothing, check it.
ABSL_ATTRIBUTE_NOINLINE inline bool LooksAlreadyFree(const Resolved& r, const void* p) {
  if (r.guarded_usable != 0) return !GuardedIsLive(p);
  if (r.large != nullptr) {
    // A freed large block whose mapping waits in the large cache still
    // resolves (its header and block are where they were): its state says
    // it is not live. Without this, realloc resized the cached block in
    // place and handed it out while the cache could hand it out again.
    // Relaxed: the program's own hand-off orders its free before this call
    // (as for offset and usable, large.h).
    return r.large->state.load(std::memory_order_relaxed) != LargeHeader::kLive;
  }
  // (The default build's free blocks hold plain links: nothing to judge by.)
  return kCheckFreedBlock && HoldsFreeWords(p, r.run->size, GetLinkKey());
}

// Reports p, which LooksAlreadyFree found free, as freed twice by `op`.
ABSL_ATTRIBUTE_NOINLINE inline void ReportAlreadyFree(const Resolved& r, const void* p, const char* op) {
  if (r.guarded_usable != 0) return GuardedReportFreed(p, op);
  ReportMisuse(p, Misuse::kDoubleFree, op);
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_FREE_PATH_H_
