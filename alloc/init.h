// Start-up and exit: every step strata takes before main() and after it,
// in one documented order, each taken once (init.cc).
//
// Start-up, one constructor of priority 101, in this order:
//   1. kOptions: read STRATA_* from the environment (options.h). First, so
//      that every later step, and the program's own constructors, see the
//      user's knobs.
//   2. kReentryReport: a spin lock taken by the thread that holds it (a
//      signal handler re-entering strata while its thread holds the lock)
//      reports that and aborts instead of spinning for ever (error.h).
//      Early: it guards every later step's locks too.
//   3. kDropIn: only where the malloc override is linked (libstrata.so,
//      //alloc:malloc): glibc's own blocks that reach free() go back to
//      glibc (foreign.h). Before any program constructor can free one.
//   4. kReleaseEngine: the heaps' decay hook, the thread-exit notice and the
//      options' change hook (release.h). Before the sampler, which the
//      engine's background thread runs.
//   5. kSampler: the stats layer's sampler (stats.h, sample_interval_ms).
//   6. kProfileSignal: the heap profile's signal handler, when the
//      profile_signal option asks for one (profile_triggers.h). After the
//      options; its later changes come through the engine's change hook.
//   7. kForkHandlers: pthread_atfork (fork.h). Last: pthread_atfork may
//      allocate, and by now every hook an allocation may call is set.
// Exit, one destructor of priority 101: the statistics of stats_on_exit,
// then the heap profiles of profile_file (profile_triggers.h).
//
// Nothing here is needed for an allocation to work: a malloc that runs
// before this constructor (another library's constructor, or a program's
// .preinit_array) is served, and reads the environment itself on its first
// slow path (options_internal::EnsureInitialized). From .preinit_array,
// which runs before libc has set the environment up, it is served with the
// defaults, and step 1 reads the environment afterwards. The steps only add
// hooks, so taking them late loses nothing but what they hook.
#ifndef STRATA_ALLOC_INIT_H_
#define STRATA_ALLOC_INIT_H_

#include <cstddef>
#include <cstdint>

namespace strata::internal {

enum class InitStep : uint8_t {
  kOptions,
  kReentryReport,
  kDropIn,
  kReleaseEngine,
  kSampler,
  kProfileSignal,
  kForkHandlers,
};
inline constexpr size_t kNumInitSteps = 7;

// Takes every start-up step not yet taken, in the order above. The
// constructor calls it; later calls return at once. Thread-safety: the
// constructor runs before any thread strata knows of; a second caller on
// another thread waits for nothing and may return before the first is done
// (only tests call it twice).
void Initialize();

// The drop-in's step, defined by override.cc. A weak reference: programs
// that link strata's API without the override have none, and skip step 3.
// The one place where a lower layer names a higher one, by link rather
// than by include.
[[gnu::weak]] void InstallDropIn();

// What Initialize() did, for tests: steps[i] is the i-th step taken, and
// count[s] how many times step s ran (each must be 1, or 0 for kDropIn
// without the override).
struct InitRecord {
  InitStep steps[kNumInitSteps];
  size_t taken;
  uint8_t count[kNumInitSteps];
};
InitRecord GetInitRecord();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INIT_H_
