// Start-up and exit, in the order init.h documents.
#include "alloc/init.h"

#include <atomic>

#include "alloc/error.h"
#include "alloc/fork.h"
#include "alloc/options.h"
#include "alloc/profile_triggers.h"
#include "alloc/release.h"
#include "alloc/stats.h"

namespace strata::internal {
namespace {

std::atomic<bool> g_initialized{false};
InitRecord g_record{};

void Take(InitStep s, void (*step)()) {
  step();
  g_record.steps[g_record.taken++] = s;
  ++g_record.count[static_cast<size_t>(s)];
}

void InstallSampler() { SetSampler(&WriteSample); }

__attribute__((constructor(101))) void InitializeAtStartUp() { Initialize(); }

// STRATA_STATS_ON_EXIT (the stats_on_exit option): statistics at exit.
// STRATA_PROFILE_FILE (profile_file): the heap profiles at exit.
__attribute__((destructor(101))) void AtExit() {
  WriteStatsOnExit();
  WriteProfilesAtExit();
}

}  // namespace

void Initialize() {
  // Relaxed: only elects the one caller that takes the steps; each step
  // publishes what it installs itself.
  if (g_initialized.exchange(true, std::memory_order_relaxed)) return;
  Take(InitStep::kOptions, &options_internal::EnsureInitialized);
  Take(InitStep::kReentryReport, &InstallReentryReport);
  if (&InstallDropIn != nullptr) Take(InitStep::kDropIn, &InstallDropIn);
  Take(InitStep::kReleaseEngine, &InstallReleaseEngine);
  Take(InitStep::kSampler, &InstallSampler);
  Take(InitStep::kProfileSignal, &ApplyProfileSignal);
  Take(InitStep::kForkHandlers, &InstallForkHandlers);
}

InitRecord GetInitRecord() { return g_record; }

}  // namespace strata::internal
