// A watchdog for tests that could hang: the test names the step it is in
// (Step), and an alarm that fires prints that step after `prefix` on
// stderr and exits 99 (async-signal-safe: write and _exit only). Header
// only, no strata dependency: preloaded programs use it as well as gtests.
#ifndef STRATA_TESTS_UTIL_STEP_WATCHDOG_H_
#define STRATA_TESTS_UTIL_STEP_WATCHDOG_H_

#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

namespace strata::testing {

namespace step_watchdog_internal {
inline std::atomic<const char*> g_step{"start"};
inline const char* g_prefix = "hung at: ";
inline void OnAlarm(int) {
  const char* step = g_step.load(std::memory_order_relaxed);
  (void)!write(2, g_prefix, strlen(g_prefix));
  (void)!write(2, step, strlen(step));
  (void)!write(2, "\n", 1);
  _exit(99);
}
}  // namespace step_watchdog_internal

// Arms the alarm: `seconds` from now, unless DisarmWatchdog comes first.
inline void ArmWatchdog(const char* prefix, unsigned seconds) {
  step_watchdog_internal::g_prefix = prefix;
  signal(SIGALRM, &step_watchdog_internal::OnAlarm);
  alarm(seconds);
}
inline void DisarmWatchdog() { alarm(0); }

// The step in progress, for the alarm's message.
inline void Step(const char* s) { step_watchdog_internal::g_step.store(s, std::memory_order_relaxed); }

// Sleeps ms milliseconds, across signals.
inline void SleepMs(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

}  // namespace strata::testing

#endif  // STRATA_TESTS_UTIL_STEP_WATCHDOG_H_
