// When heap profiles are written without the program asking: at exit (the
// profile_file option) and on a signal (profile_signal). profile.h writes them.
#ifndef STRATA_ALLOC_PROFILE_TRIGGERS_H_
#define STRATA_ALLOC_PROFILE_TRIGGERS_H_

namespace strata::internal {

// Installs (or moves, or removes) the profile_signal handler to match the
// options, and notes profile_file for it. Called at start-up (init.h) and
// when either option changes (the release engine's change hook). The
// handler writes the live view to profile_file.<n> (n = 1, 2, ...), or to
// /tmp/strata.<pid>.<n>.heap when profile_file is empty, and prints one
// line naming the file. It never waits without bound for the profile's
// lock: if the interrupted thread holds it, the line says so and nothing
// is written.
void ApplyProfileSignal();

// At exit: with profile_file set, the live view to it and the peak view to
// profile_file.peak.
void WriteProfilesAtExit();

// The signal handler's writer (profile.cc). False: the profile was busy.
bool WriteHeapProfileFromSignal(int fd);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_PROFILE_TRIGGERS_H_
