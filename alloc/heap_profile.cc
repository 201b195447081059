#include "alloc/heap_profile.h"

#include <sched.h>

#include <cstring>

#include "absl/base/thread_annotations.h"
#include "alloc/cancel.h"
#include "alloc/meta_alloc.h"
#include "alloc/sampling.h"
#include "alloc/scratch.h"
#include "alloc/stack_trace.h"
#include "threading/spin_lock.h"

namespace strata::internal {
namespace {

struct Bucket {
  Bucket* chain;      // next in its hash slot
  Bucket* all_next;   // next in the list of every bucket
  uint64_t hash;
  size_t depth;
  double live_count, live_bytes;
  double total_count, total_bytes;  // since the start
  double mark_count, mark_bytes;    // totals at the last mark
  double peak_count, peak_bytes;    // live at the last peak snapshot
  uintptr_t pcs[kMaxStackFrames];
};

struct Sample {
  Bucket* bucket;
  double count, bytes;  // what this sample added to its bucket's live numbers
  Sample* next_free;
};

constexpr size_t kSlots = 4096;
constexpr size_t kSamplesPerChunk = 128;

// SYNCHRONIZATION: everything below is guarded by g_lock.
constinit threading::SpinLock g_lock;
Bucket* g_slots[kSlots] ABSL_GUARDED_BY(g_lock) = {};
Bucket* g_all ABSL_GUARDED_BY(g_lock) = nullptr;
Sample* g_free_samples ABSL_GUARDED_BY(g_lock) = nullptr;
double g_live_bytes ABSL_GUARDED_BY(g_lock) = 0;
double g_peak_bytes ABSL_GUARDED_BY(g_lock) = 0;
uint64_t g_samples_live ABSL_GUARDED_BY(g_lock) = 0;
uint64_t g_samples_taken ABSL_GUARDED_BY(g_lock) = 0;
uint64_t g_samples_dropped ABSL_GUARDED_BY(g_lock) = 0;
uint64_t g_buckets ABSL_GUARDED_BY(g_lock) = 0;

uint64_t HashStack(const uintptr_t* pcs, size_t depth) {
  uint64_t h = depth;
  for (size_t i = 0; i < depth; ++i) {
    h ^= pcs[i];
    h *= 0x9e3779b97f4a7c15;
    h ^= h >> 29;
  }
  return h;
}

Bucket* FindOrAddLocked(const uintptr_t* pcs, size_t depth) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  const uint64_t hash = HashStack(pcs, depth);
  Bucket** slot = &g_slots[hash % kSlots];
  for (Bucket* b = *slot; b != nullptr; b = b->chain) {
    if (b->hash == hash && b->depth == depth && memcmp(b->pcs, pcs, depth * sizeof(pcs[0])) == 0) {
      return b;
    }
  }
  auto* b = static_cast<Bucket*>(MetaAllocate(sizeof(Bucket)));
  if (b == nullptr) return nullptr;
  b->hash = hash;
  b->depth = depth;
  memcpy(b->pcs, pcs, depth * sizeof(pcs[0]));
  b->chain = *slot;
  *slot = b;
  b->all_next = g_all;
  g_all = b;
  ++g_buckets;
  return b;
}

Sample* NewSampleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  if (g_free_samples == nullptr) {
    auto* chunk = static_cast<Sample*>(MetaAllocate(sizeof(Sample) * kSamplesPerChunk));
    if (chunk == nullptr) return nullptr;
    for (size_t i = 0; i < kSamplesPerChunk; ++i) {
      chunk[i].next_free = g_free_samples;
      g_free_samples = &chunk[i];
    }
  }
  Sample* s = g_free_samples;
  g_free_samples = s->next_free;
  return s;
}

// The live view becomes the peak view.
void SnapshotPeakLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  for (Bucket* b = g_all; b != nullptr; b = b->all_next) {
    b->peak_count = b->live_count;
    b->peak_bytes = b->live_bytes;
  }
  g_peak_bytes = g_live_bytes;
}

uint64_t Round(double v) { return v <= 0 ? 0 : static_cast<uint64_t>(v + 0.5); }

ProfileRow RowOf(const Bucket* b, ProfileView view) {
  ProfileRow r{b->pcs, b->depth, 0, 0, 0, 0};
  switch (view) {
    case ProfileView::kLive:
      r.count = Round(b->live_count);
      r.bytes = Round(b->live_bytes);
      r.total_count = Round(b->total_count);
      r.total_bytes = Round(b->total_bytes);
      break;
    case ProfileView::kPeak:
      r.count = r.total_count = Round(b->peak_count);
      r.bytes = r.total_bytes = Round(b->peak_bytes);
      break;
    case ProfileView::kSinceMark:
      r.count = r.total_count = Round(b->total_count - b->mark_count);
      r.bytes = r.total_bytes = Round(b->total_bytes - b->mark_bytes);
      break;
  }
  return r;
}

// The view's totals; with `rows` (room for g_buckets), also its non-zero
// rows, *n of them.
void WalkLocked(ProfileView view, ProfileRow* rows, size_t* n, ProfileTotals* totals)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  ProfileTotals t{};
  size_t k = 0;
  for (Bucket* b = g_all; b != nullptr; b = b->all_next) {
    const ProfileRow r = RowOf(b, view);
    if (r.count == 0 && r.bytes == 0 && r.total_count == 0 && r.total_bytes == 0) continue;
    t.count += r.count;
    t.bytes += r.bytes;
    t.total_count += r.total_count;
    t.total_bytes += r.total_bytes;
    if (rows != nullptr) rows[k++] = r;
  }
  if (n != nullptr) *n = k;
  t.samples_live = g_samples_live;
  t.samples_taken = g_samples_taken;
  t.samples_dropped = g_samples_dropped;
  t.buckets = g_buckets;
  if (totals != nullptr) *totals = t;
}

// A signal handler's lock: its own thread may hold it, so it never waits
// without bound. About 10,000 yields (milliseconds), then it gives up.
bool TryLockBounded() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true, g_lock) {
  for (int i = 0; i < 10000; ++i) {
    if (g_lock.TryLock()) return true;
    sched_yield();
  }
  return false;
}

}  // namespace

void* ProfileRecord(size_t n, size_t sampled_size, int64_t rate, const uintptr_t* pcs, size_t depth) {
  // The chance this allocation had of being sampled: drawn by its class's
  // size (or its own, for a large block), it stands for 1/p allocations.
  const double p = SampleProbability(sampled_size, rate);
  const double count = 1 / p;
  const double bytes = static_cast<double>(n) / p;
  threading::SpinLockHolder hold(&g_lock);
  ++g_samples_taken;
  Bucket* b = FindOrAddLocked(pcs, depth);
  Sample* s = b != nullptr ? NewSampleLocked() : nullptr;
  if (s == nullptr) {
    ++g_samples_dropped;
    return nullptr;
  }
  s->bucket = b;
  s->count = count;
  s->bytes = bytes;
  b->live_count += count;
  b->live_bytes += bytes;
  b->total_count += count;
  b->total_bytes += bytes;
  ++g_samples_live;
  g_live_bytes += bytes;
  if (g_live_bytes > g_peak_bytes + g_peak_bytes / 16) SnapshotPeakLocked();
  return s;
}

void ProfileFree(void* sample) {
  auto* s = static_cast<Sample*>(sample);
  threading::SpinLockHolder hold(&g_lock);
  Bucket* b = s->bucket;
  b->live_count -= s->count;
  b->live_bytes -= s->bytes;
  g_live_bytes -= s->bytes;
  --g_samples_live;
  s->next_free = g_free_samples;
  g_free_samples = s;
}

void ProfileMark() {
  threading::SpinLockHolder hold(&g_lock);
  for (Bucket* b = g_all; b != nullptr; b = b->all_next) {
    b->mark_count = b->total_count;
    b->mark_bytes = b->total_bytes;
  }
}

bool VisitProfile(ProfileView view, const ProfileVisitor& visitor, bool try_only) {
  // The view is copied under the lock and visited after it is released: a
  // visitor writes (profile.cc), and a write may block on a full pipe, or
  // be where the thread is cancelled. Neither may keep the lock, which
  // every sampled allocation and free takes. A bucket's stack (what a row
  // points to) never changes once the bucket is listed, and buckets are
  // never freed: the rows stay valid without the lock.
  Scratch rows;
  size_t n = 0;
  ProfileTotals t{};
  if (try_only) {
    if (!TryLockBounded()) return false;
  } else {
    g_lock.Lock();
  }
  // One row per bucket at most. (Mapped under the lock, as a new bucket's
  // metadata is: a bounded system call, never a wait for another thread.)
  const bool room = visitor.row == nullptr || rows.Reserve(g_buckets * sizeof(ProfileRow));
  if (room) WalkLocked(view, visitor.row != nullptr ? rows.As<ProfileRow>() : nullptr, &n, &t);
  g_lock.Unlock();
  if (!room) return false;
  OnCancel(&Scratch::ReleaseOnCancel, &rows, [&] {
    if (visitor.head != nullptr) visitor.head(t, visitor.arg);
    for (size_t i = 0; i < n; ++i) visitor.row(rows.As<ProfileRow>()[i], visitor.arg);
  });
  return true;
}

ProfileTotals GetProfileTotals(ProfileView view) {
  ProfileTotals t{};
  threading::SpinLockHolder hold(&g_lock);
  WalkLocked(view, nullptr, nullptr, &t);
  return t;
}

void LockProfileForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Lock(); }
void UnlockProfileForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Unlock(); }

}  // namespace strata::internal
