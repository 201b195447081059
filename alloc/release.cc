// The release engine (see release.h): the global pass, the background
// thread and the sampler.
#include "alloc/release.h"

#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "absl/base/thread_annotations.h"
#include "alloc/arena.h"
#include "alloc/heap.h"
#include "alloc/large.h"
#include "alloc/limit.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "alloc/profile_triggers.h"
#include "threading/spin_lock.h"

namespace strata::internal {
namespace {

// SYNCHRONIZATION
//  - g_pass_lock: one global pass at a time (TryLock from slow paths and
//    the background thread, Lock from ReleaseNow and fork). The recovery
//    scan's lock and heap locks are taken inside it, never the other way
//    round (a scan only tries it).
//  - g_next_pass_ms: relaxed; a rate limit only (a pass that runs twice is
//    harmless).
//  - g_bg_state: 0 stopped, 1 starting, 2 running. The CAS 0 -> 1 elects the
//    one thread that creates the background thread; the background thread
//    stores 0 when it exits (relaxed: nothing is published with it).
//  - totals and counters: relaxed statistics.
constinit threading::SpinLock g_pass_lock;
std::atomic<uint64_t> g_next_pass_ms{0};
std::atomic<int> g_bg_state{0};
std::atomic<uint64_t> g_bg_retry_ms{0};
std::atomic<uint64_t> g_bg_passes{0};
std::atomic<uint64_t> g_slow_passes{0};
std::atomic<uint64_t> g_last_pass_ms{0};
std::atomic<SampleFn> g_sampler{nullptr};
// Relaxed: PauseRelease() then takes the pass lock, which orders any pass
// that saw the old value before the caller's next step.
std::atomic<int> g_paused{0};

bool Paused() { return g_paused.load(std::memory_order_relaxed) != 0; }

std::atomic<uint64_t> g_pool_purged{0};
std::atomic<uint64_t> g_arena_purged{0};
std::atomic<uint64_t> g_arena_unmapped{0};
std::atomic<uint64_t> g_large_unmapped{0};

void Account(const ReleaseTotals& t) {
  // Relaxed: statistics only.
  g_pool_purged.fetch_add(t.pool_bytes_purged, std::memory_order_relaxed);
  g_arena_purged.fetch_add(t.arena_bytes_purged, std::memory_order_relaxed);
  g_arena_unmapped.fetch_add(t.arena_bytes_unmapped, std::memory_order_relaxed);
  g_large_unmapped.fetch_add(t.large_bytes_unmapped, std::memory_order_relaxed);
}

struct OrphanWork {
  uint64_t now;
  int64_t delay;
  bool force;
  uint64_t purged;
};

void DecayOne(Heap* orphan, void* arg) {
  auto* w = static_cast<OrphanWork*>(arg);
  w->purged += orphan->Decay(w->now, w->delay, w->force, /*exclusive=*/true);
}

size_t Retained() { return static_cast<size_t>(GetOption(Option::kArenasRetained)); }

// The global pass.
// `retained`: empty arenas kept mapped (arenas_retained; none when a soft
// memory limit is in the way).
ReleaseTotals PassLocked(uint64_t now, bool force, size_t retained)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_pass_lock) {
  ReleaseTotals t{};
  const int64_t delay = GetOption(Option::kPurgeDelayMs);
  // Relaxed: statistics only.
  g_last_pass_ms.store(now, std::memory_order_relaxed);
  if (delay < 0 && !force) return t;
  // 1. Dead threads' heaps: free what was sent to them, return their empty
  //    arenas, purge their due pools.
  OrphanWork work{now, delay, force, 0};
  ForEachOrphanExclusive(&DecayOne, &work);
  t.pool_bytes_purged += work.purged;
  // 2. Every live heap's free pools that are due, including threads that
  //    have stopped allocating (TryLock: a busy owner purges its own).
  for (Heap* h = AllHeaps(); h != nullptr; h = h->entry().all_next()) {
    if (h->entry().state() == HeapEntry::State::kFree) continue;
    t.pool_bytes_purged += h->Decay(now, delay, force, /*exclusive=*/false);
  }
  // 3. Empty arenas: purge, and unmap beyond the retained count.
  const ArenaDecayResult a = DecayEmptyArenas(now, delay, retained, force);
  t.arena_bytes_purged += a.purged_bytes;
  t.arena_bytes_unmapped += a.unmapped_bytes;
  // 4. The large cache.
  t.large_bytes_unmapped += force ? LargeReleaseCache() : LargeDecay(now, delay);
  Account(t);
  return t;
}

// ---- The background thread ----------------------------------------------

bool BackgroundWanted() {
  return GetOption(Option::kBackgroundRelease) != 0 || GetOption(Option::kSampleIntervalMs) > 0;
}

// The background thread sleeps on this futex word: a thread exit bumps it
// and wakes the thread early. Relaxed: the futex syscall orders nothing we
// rely on; the word is only a wake-up channel.
std::atomic<uint32_t> g_wake{0};

void SleepMs(uint32_t ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = static_cast<long>(ms % 1000) * 1000000;
  const uint32_t seen = g_wake.load(std::memory_order_relaxed);
  // Returns on timeout, on a wake-up, or at once if the word moved.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&g_wake), FUTEX_WAIT_PRIVATE, seen, &ts,
          nullptr, 0);
}

void WakeBackground() {
  g_wake.fetch_add(1, std::memory_order_relaxed);
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&g_wake), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
}

// True when the calling thread (not the process's first) is the only one
// still running: the process has 1 thread, or 2 of which the first has
// exited and lingers as a zombie until the last one ends.
bool OnlyThreadLeft() {
  os::ThreadState t;
  if (!os::ReadThreadState(&t)) return false;
  return t.threads == 1 || (t.threads == 2 && t.leader_exited);
}

void* BackgroundMain(void*) {
  const uint64_t start = os::NowMs();
  uint64_t next_sample = start;
  while (BackgroundWanted()) {
    // A program whose last thread calls pthread_exit ends when that thread
    // does; this thread must not keep it alive. (Its return below is then
    // the process's exit, with status 0, as the program's own would be.)
    if (OnlyThreadLeft()) break;
    const uint64_t now = os::NowMs();
    const int64_t delay = GetOption(Option::kPurgeDelayMs);
    const auto sample_every = static_cast<uint32_t>(GetOption(Option::kSampleIntervalMs));
    if (GetOption(Option::kBackgroundRelease) != 0 && !Paused() && g_pass_lock.TryLock()) {
      PassLocked(now, /*force=*/false, Retained());
      g_pass_lock.Unlock();
      // Relaxed: statistics only.
      g_bg_passes.fetch_add(1, std::memory_order_relaxed);
    }
    uint32_t sleep_ms = DecayIntervalMs(delay < 0 ? 1000 : delay);
    if (sample_every > 0) {
      if (now >= next_sample) {
        // Acquire pairs with the release store in SetSampler().
        if (SampleFn sample = g_sampler.load(std::memory_order_acquire)) sample(start, now);
        next_sample = now + sample_every;
      }
      const uint64_t until = next_sample - now;
      if (until < sleep_ms) sleep_ms = until == 0 ? 1 : static_cast<uint32_t>(until);
    }
    SleepMs(sleep_ms);
  }
  // Relaxed: see g_bg_state.
  g_bg_state.store(0, std::memory_order_relaxed);
  return nullptr;
}

// Starts the background thread if it is wanted and not running. Must be
// called where allocating is safe (pthread_create allocates): never with a
// lock the allocation would wait for. A heap's own slow lock is allowed
// (the owner re-enters it: a refill's drain that empties a run keeps it,
// FreeLocalSlow -> MaybeDecay(released) -> this hook, inside AllocateSlow;
// the refill allows for the nested allocation, heap.cc), as is none at all;
// the release engine's pass lock and the arenas' spin locks are not
// (GlobalDecay calls this after unlocking).
void MaybeStartBackground(uint64_t now) {
  // Relaxed: a hint; the CAS below decides. (First: once the thread runs,
  // this one load is all a caller pays.)
  if (g_bg_state.load(std::memory_order_relaxed) != 0) return;
  if (!BackgroundWanted()) return;
  if (now < g_bg_retry_ms.load(std::memory_order_relaxed)) return;
  int expected = 0;
  // Relaxed: the CAS only elects the creator (see g_bg_state).
  if (!g_bg_state.compare_exchange_strong(expected, 1, std::memory_order_relaxed)) return;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 << 10);
  // The thread takes no signals: the program's handlers never run on it.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t thread;
  const int rc = pthread_create(&thread, &attr, &BackgroundMain, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    // Relaxed: see g_bg_state. Try again in a while.
    g_bg_retry_ms.store(now + 10000, std::memory_order_relaxed);
    g_bg_state.store(0, std::memory_order_relaxed);
    return;
  }
  pthread_setname_np(thread, "strata-release");
  // Relaxed: see g_bg_state. Fails harmlessly if the thread already found
  // itself unwanted and stored 0.
  expected = 1;
  g_bg_state.compare_exchange_strong(expected, 2, std::memory_order_relaxed);
}

// The heaps' hook: run the global pass from a slow path when it is due.
void GlobalDecay(uint64_t now, bool released) {
  const int64_t delay = GetOption(Option::kPurgeDelayMs);
  // Relaxed: a rate limit only.
  if (now >= g_next_pass_ms.load(std::memory_order_relaxed) &&
      !Paused() && g_pass_lock.TryLock()) {
    g_next_pass_ms.store(now + DecayIntervalMs(delay), std::memory_order_relaxed);
    PassLocked(now, /*force=*/false, Retained());
    g_pass_lock.Unlock();
    // Relaxed: statistics only.
    g_slow_passes.fetch_add(1, std::memory_order_relaxed);
  }
  // Memory was just freed: from now on, release should not depend on this
  // process allocating again.
  if (released) MaybeStartBackground(now);
}

// The soft memory limit's hook (limit.h): everything the caches hold goes
// back, as for ReleaseNow, and no empty arena is kept mapped. Runs from an
// allocation about to map memory, which holds no strata lock but its heap's
// slow lock (heap.h), which the pass only ever tries.
void ReleaseForLimit() {
  threading::SpinLockHolder hold(&g_pass_lock);
  // Heaps of threads that exited without their exit hook become orphans,
  // which the pass tidies (unless a scan runs elsewhere: no wait here).
  RecoverExitedHeaps(/*wait=*/false);
  PassLocked(os::NowMs(), /*force=*/true, /*retained=*/0);
}

void OnOptionChange(Option o) {
  if (o == Option::kProfileSampleBytes || o == Option::kGuardedSampleBytes) {
    // The calling thread follows at once; the others at their next check.
    if (Heap* h = ThreadHeapIfAny()) h->FollowOptions();
    return;
  }
  if (o == Option::kProfileSignal || o == Option::kProfileFile) {
    ApplyProfileSignal();
    return;
  }
  if (o == Option::kStats) {
    // The calling thread follows at once; every other heap on its next
    // slow path that looks (see Heap::FollowOptions).
    if (Heap* h = ThreadHeapIfAny()) h->FollowOptions();
    return;
  }
  if (o != Option::kBackgroundRelease && o != Option::kSampleIntervalMs) return;
  // Values from the environment are applied at start-up, inside the first
  // allocation: the thread starts later, on first need.
  if (GetOptionSource(o) == OptionSource::kEnv) return;
  MaybeStartBackground(os::NowMs());
}

}  // namespace

ReleaseTotals ReleaseNow() {
  threading::SpinLockHolder hold(&g_pass_lock);
  // Every heap whose thread exited without its exit hook becomes an orphan
  // (or a free heap), which the pass then tidies. The scan lock nests
  // inside the pass lock; a scan elsewhere never waits for the pass lock.
  RecoverExitedHeaps(/*wait=*/true);
  return PassLocked(os::NowMs(), /*force=*/true, Retained());
}

ReleaseTotals ReleasedSoFar() {
  // Relaxed: statistics only.
  return {g_pool_purged.load(std::memory_order_relaxed),
          g_arena_purged.load(std::memory_order_relaxed),
          g_arena_unmapped.load(std::memory_order_relaxed),
          g_large_unmapped.load(std::memory_order_relaxed)};
}

BackgroundState GetBackgroundState() {
  // Relaxed: statistics only.
  return {g_bg_state.load(std::memory_order_relaxed) == 2,
          g_bg_passes.load(std::memory_order_relaxed),
          g_slow_passes.load(std::memory_order_relaxed),
          g_last_pass_ms.load(std::memory_order_relaxed)};
}

void InstallReleaseEngine() {
  SetGlobalDecayHook(&GlobalDecay);
  SetThreadExitNotice(&WakeBackground);
  options_internal::SetChangeHook(&OnOptionChange);
  SetLimitReleaseHook(&ReleaseForLimit);
}

void PauseRelease() {
  g_paused.fetch_add(1, std::memory_order_relaxed);
  // A pass that started before the increment finishes before we return.
  g_pass_lock.Lock();
  g_pass_lock.Unlock();
}

void ResumeRelease() { g_paused.fetch_sub(1, std::memory_order_relaxed); }

void SetSampler(SampleFn fn) {
  // Release pairs with the acquire load in BackgroundMain().
  g_sampler.store(fn, std::memory_order_release);
}

// Held from fork's prepare handler to the parent's or child's (fork.cc): a
// hand-over the analysis cannot follow across functions.
void LockReleaseForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_pass_lock.Lock(); }

void UnlockReleaseForFork(bool in_child) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // Relaxed: the child has exactly one thread.
  if (in_child) g_bg_state.store(0, std::memory_order_relaxed);
  g_pass_lock.Unlock();
}

}  // namespace strata::internal
