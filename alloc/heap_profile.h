// The heap profile's store: every sampled allocation (sampling.h) with its
// stack, aggregated by stack into buckets. Three views come from it:
//  - live: the sampled blocks not freed yet (the heap now);
//  - peak: the live view as it was when the estimated live bytes were
//    highest (refreshed when they exceed the last snapshot by 1/16, so the
//    snapshot is within 6 % of the true peak, and a growing heap costs a
//    walk of the buckets per 6 % of growth, not per sample);
//  - since mark: every sampled allocation since the last mark, freed or
//    not (growth and churn between two points of a program's run).
// Counts and bytes are estimates: each sample counts 1/p allocations and
// n/p bytes, p being the chance an allocation of its size n was sampled.
//
// Thread-safety: one spin lock guards the store; only samples take it (one
// per profile_sample_bytes allocated), the writer (to copy a view; it
// writes after releasing it), and fork. No system call that can block or
// be a cancellation point runs under it. Memory comes
// from meta_alloc: no malloc anywhere. Buckets live for the process
// (gperftools' and tcmalloc's choice too): a stack seen once stays listed,
// with zero live bytes.
#ifndef STRATA_ALLOC_HEAP_PROFILE_H_
#define STRATA_ALLOC_HEAP_PROFILE_H_

#include <cstddef>
#include <cstdint>

namespace strata::internal {

// Records a sampled allocation of n bytes (the size asked for) at `rate`,
// drawn with the probability of a block of `sampled_size` bytes (its
// class's size, or n for a large block; see SampleCountdown), with its stack (innermost program frame first). Returns the handle that
// ProfileFree takes, or nullptr when metadata memory ran out (then the
// allocation is not in the profile; counted as dropped).
void* ProfileRecord(size_t n, size_t sampled_size, int64_t rate, const uintptr_t* pcs, size_t depth);

// The sampled block of `sample` was freed.
void ProfileFree(void* sample);

// Starts the "since mark" view afresh.
void ProfileMark();

enum class ProfileView : uint32_t { kLive, kPeak, kSinceMark };

// One stack's numbers in a view. For kLive, `count`/`bytes` are live and
// `total_*` everything allocated there since the start; kPeak gives the
// snapshot in both; kSinceMark the allocations since the mark in both.
struct ProfileRow {
  const uintptr_t* pcs;
  size_t depth;
  uint64_t count, bytes;
  uint64_t total_count, total_bytes;
};

struct ProfileTotals {
  uint64_t count, bytes;              // the view's sums (rounded rows)
  uint64_t total_count, total_bytes;
  uint64_t samples_live;              // sampled blocks not yet freed
  uint64_t samples_taken;             // since the start
  uint64_t samples_dropped;           // out of metadata memory
  uint64_t buckets;                   // distinct stacks
};

// Calls head (if set) with the view's totals, then row for every stack with
// a non-zero row in `view` (neither may allocate from strata), all from one
// copy of the view taken under the store's lock and visited after it is
// released: a visitor may write, block on a full pipe or be cancelled
// there (the copy's memory is given back then too), while samples go on.
// With try_only, gives up and returns false when the lock stays busy for a
// bounded time (a signal handler may have interrupted its holder). Also
// false when no memory could be mapped for the copy (nothing visited);
// otherwise true.
struct ProfileVisitor {
  void (*head)(const ProfileTotals& totals, void* arg);
  void (*row)(const ProfileRow& row, void* arg);
  void* arg;
};
bool VisitProfile(ProfileView view, const ProfileVisitor& visitor, bool try_only);

// Totals of `view` alone (no rows).
ProfileTotals GetProfileTotals(ProfileView view);

// fork(): the store's lock is held across fork.
void LockProfileForFork();
void UnlockProfileForFork();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_HEAP_PROFILE_H_
