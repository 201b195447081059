// strata's runtime knobs: one registry, three ways in.
//
// Every knob is declared exactly once, in STRATA_OPTION_LIST below, with its
// type, default, accepted range, whether it may change while the program
// runs, and one line of documentation. From that one declaration come:
//  - the environment variable STRATA_<NAME>, read once at start-up (before
//    the first allocation is served) without allocating;
//  - the Abseil flag --strata_<name>, defined by //alloc:flags (a separate
//    library, so the allocator never depends on Abseil's flag runtime);
//  - the runtime API below (C++ and C), typed or by name.
// A value outside the accepted range is refused with one line on stderr
// naming the knob, the value, where it came from and the accepted range; the
// previous value stays. Every stats output lists each knob's value and where
// it came from (default, env, flag, api).
//
// Thread-safety: every function here may be called from any thread at any
// time. Values are read with relaxed loads on slow paths only.
#ifndef STRATA_ALLOC_OPTIONS_H_
#define STRATA_ALLOC_OPTIONS_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#include <atomic>

namespace strata {

enum class OptionType : uint8_t {
  kBool,      // 0/1, true/false, on/off, yes/no
  kInt,       // a decimal integer
  kBytes,     // a byte count; suffixes k, m, g (powers of 1024)
  kMillis,    // milliseconds; suffixes ms and s
  kEnum,      // one of a fixed list of names (stored as its index)
  kString,    // text up to kMaxOptionString - 1 bytes, checked by a validator
};

// Where the value in force came from.
enum class OptionSource : uint8_t { kDefault, kEnv, kFlag, kApi };

inline constexpr size_t kMaxOptionString = 256;

// X(Id, name, type, default, min, max, runtime, choices, doc)
//   name:    lower_snake; env STRATA_<NAME>, flag --strata_<name>.
//   runtime: true when a change takes effect while the program runs; false
//            knobs are read once, at start-up, and only the environment can
//            set them.
//   choices: for kEnum, a "|"-separated list of names; default/min/max index it.
//            For kString, the accepted forms, "|"-separated: a word stands
//            for itself, "/" for an absolute path, an empty form for the
//            empty text; nullptr accepts any text shorter than 256 bytes.
// The statistics formats, by the one name each has: the stats_format
// option's choices, strata_stats_write's names, and in this order the
// values of strata::StatsFormat (stats.h checks the order).
#define STRATA_STATS_FORMAT_NAMES "table|json|json-arenas|prometheus"

#define STRATA_OPTION_LIST(X)                                                                     \
  X(kThreadCacheBytes, thread_cache_bytes, kBytes, int64_t{4} << 20, 0, int64_t{1} << 30, true,  \
    nullptr,                                                                                      \
    "Free pools one thread's heap keeps for itself; beyond it, its empty arenas go back to "    \
    "the shared stack (for any thread, and for purging and unmapping).")                         \
  X(kTotalCacheBytes, total_cache_bytes, kBytes, int64_t{64} << 20, 0, int64_t{1} << 40, true,   \
    nullptr,                                                                                      \
    "Free pools all thread heaps together may keep; when the sum is over it, a heap that "       \
    "releases a run keeps no spare pools at all.")                                               \
  X(kRemoteBatchBytes, remote_batch_bytes, kBytes, int64_t{16} << 10, 0, int64_t{1} << 20, true, \
    nullptr,                                                                                      \
    "Bytes a thread gathers for one owner before handing the batch to the owner's queue "        \
    "(0: hand over every remote free at once).")                                                 \
  X(kPurgeDelayMs, purge_delay_ms, kMillis, 1000, -1, 3600000, true, nullptr,                     \
    "How long a free pool or empty arena stays resident before it is purged (madvise); 0 "       \
    "purges at once, -1 never (only ReleaseMemory/malloc_trim do).")                             \
  X(kArenasRetained, arenas_retained, kInt, 16, 0, 1 << 20, true, nullptr,                        \
    "Empty 256 KiB arenas kept mapped (purged) for reuse; the rest are unmapped.")               \
  X(kBackgroundRelease, background_release, kBool, 1, 0, 1, true, nullptr,                        \
    "Run a background thread that purges and unmaps on schedule even when no thread "           \
    "allocates (started on first need).")                                                        \
  X(kPurgeMode, purge_mode, kEnum, 0, 0, 1, true, "dontneed|free",                                \
    "How pools are purged: dontneed (MADV_DONTNEED: RSS drops at once) or free (MADV_FREE: "    \
    "cheaper, but pages stay counted in RSS until the kernel needs them).")                      \
  X(kLargeCacheBytes, large_cache_bytes, kBytes, int64_t{256} << 20, 0, int64_t{1} << 36, true,  \
    nullptr,                                                                                      \
    "Bytes of freed large mappings (> 64 KiB) kept for reuse, pages and all, for "              \
    "purge_delay_ms; each may be at most half of it.")                                          \
  X(kErrorMode, error_mode, kEnum, 0, 0, 1, true, "abort|count",                                  \
    "On an invalid or double free: abort (print one line, then abort) or count (print one "     \
    "line, count it, ignore the call).")                                                         \
  X(kStats, stats, kBool, 0, 0, 1, true, nullptr,                                                 \
    "Detailed statistics: count calls and requested bytes per size class (every allocation "    \
    "then takes the counting path; a few ns each).")                                             \
  X(kStatsOnExit, stats_on_exit, kString, 0, 0, 0, true, "|0|1|stderr|/",                         \
    "Print statistics at exit: empty or 0 (off), 1 or stderr, or an absolute path to append "    \
    "to.")                                                                                       \
  X(kStatsFormat, stats_format, kEnum, 0, 0, 3, true, STRATA_STATS_FORMAT_NAMES,                  \
    "Format of the statistics printed at exit and by malloc_stats() (json-arenas adds the "     \
    "arena map that tools/stats_viewer draws).")                                                 \
  X(kSampleIntervalMs, sample_interval_ms, kMillis, 0, 0, 3600000, true, nullptr,                 \
    "Every this many ms the background thread appends one JSON line (time, RSS, live and "      \
    "mapped bytes) to sample_file; 0 turns sampling off.")                                       \
  X(kSampleFile, sample_file, kString, 0, 0, 0, true, "|/",                                       \
    "Absolute path the samples are appended to (empty: stderr).")                                \
  X(kProfileSampleBytes, profile_sample_bytes, kBytes, 0, 0, int64_t{1} << 40, true, nullptr,     \
    "Heap profiling: sample about one allocation per this many bytes allocated (each thread "   \
    "counts down its bytes; 2m is tcmalloc's rate); 0 turns profiling off.")                     \
  X(kProfileFile, profile_file, kString, 0, 0, 0, true, "|/",                                     \
    "Absolute path the heap profile is written to at exit (and <path>.peak, the peak heap); "   \
    "profile_signal writes <path>.<n>. Empty: none at exit.")                                    \
  X(kProfileSignal, profile_signal, kInt, 0, 0, 64, true, nullptr,                                \
    "A signal (e.g. 12 for SIGUSR2) on which the live heap profile is written to "              \
    "profile_file.<n> (or /tmp/strata.<pid>.<n>.heap); 0: no handler.")                          \
  X(kMemoryLimitBytes, memory_limit_bytes, kBytes, 0, 0, int64_t{1} << 46, true, nullptr,         \
    "Bound on strata's mapped memory (arenas, large blocks' pages); 0: no limit. See "          \
    "memory_limit_mode.")                                                                        \
  X(kMemoryLimitMode, memory_limit_mode, kEnum, 0, 0, 1, true, "soft|hard",                       \
    "soft: before mapping past the limit, give back every cache and map anyway (counted); "     \
    "hard: allocations that would map past it fail with ENOMEM.")                                \
  X(kGuardedSampleBytes, guarded_sample_bytes, kBytes, 0, 0, int64_t{1} << 40, true, nullptr,     \
    "Guarded sampling: about one allocation (of at most a page) per this many bytes allocated "  \
    "gets a page of its own between guard pages, so that an overflow or a use after free "      \
    "faults at once and is reported; 0 turns it off.")                                           \
  X(kGuardedSlots, guarded_slots, kInt, 256, 1, 16384, true, nullptr,                             \
    "Guarded slots (a page and a guard page each), reserved at the first guarded allocation; "  \
    "later changes may lower the slots used, not raise them above those reserved.")

enum class Option : uint32_t {
#define STRATA_OPTION_ENUM(id, name, type, def, lo, hi, runtime, choices, doc) id,
  STRATA_OPTION_LIST(STRATA_OPTION_ENUM)
#undef STRATA_OPTION_ENUM
  kNumOptions
};
inline constexpr size_t kNumOptions = static_cast<size_t>(Option::kNumOptions);

struct OptionInfo {
  const char* name;     // "thread_cache_bytes"
  OptionType type;
  int64_t default_value;
  int64_t min;
  int64_t max;
  bool runtime;
  const char* choices;  // kEnum: "a|b|c"; kString: accepted forms (above)
  const char* doc;
};

// Static description of option o.
const OptionInfo& GetOptionInfo(Option o);

// Finds an option by name ("thread_cache_bytes"; a "strata_" prefix is
// accepted). Returns false when there is none.
bool FindOption(const char* name, Option* out);

namespace options_internal {
extern std::atomic<int64_t> g_values[kNumOptions];
extern std::atomic<uint64_t> g_changes;
}  // namespace options_internal

// How many times an option was set so far (any option, any source): a slow
// path that follows several knobs compares this one count, and reads the
// knobs only when it moved. A reader that sees a count sees the values
// stored before it.
inline uint64_t OptionChanges() {
  // Acquire pairs with the release increment after each value's store
  // (options.cc, Store).
  return options_internal::g_changes.load(std::memory_order_acquire);
}

// The value in force (kEnum: the index of the choice; kString: unused).
inline int64_t GetOption(Option o) {
  // Relaxed: a knob is a standalone value; no other memory is published
  // with it.
  return options_internal::g_values[static_cast<size_t>(o)].load(std::memory_order_relaxed);
}

// Copies a kString option's value (NUL-terminated, possibly empty) to buf.
void GetStringOption(Option o, char* buf, size_t len);

OptionSource GetOptionSource(Option o);
const char* OptionSourceName(OptionSource s);  // "default", "env", "flag", "api"

// Sets an integer, byte, millisecond, bool (0/1) or enum (index) option.
// Returns false, printing one line and keeping the old value, when the
// value is out of range or the option is a string or start-up only.
bool SetOption(Option o, int64_t value);

// Parses and sets by name, as the environment and flags do. Returns false
// (printing one line, keeping the old value) for an unknown name or a bad value.
bool SetOptionByName(const char* name, const char* value,
                     OptionSource source = OptionSource::kApi);

// Typed setters for the knobs programs most often tune.
inline bool SetThreadCacheBytes(size_t bytes) {
  return SetOption(Option::kThreadCacheBytes, static_cast<int64_t>(bytes));
}
inline bool SetRemoteBatchBytes(size_t bytes) {
  return SetOption(Option::kRemoteBatchBytes, static_cast<int64_t>(bytes));
}
inline bool SetPurgeDelayMs(int64_t ms) { return SetOption(Option::kPurgeDelayMs, ms); }
inline bool SetBackgroundRelease(bool on) { return SetOption(Option::kBackgroundRelease, on); }
// Heap profiling's rate (profile.h; 0: off). The calling thread follows at
// once, every other thread within its next 8 MiB allocated or next sample.
inline bool SetProfileSampleBytes(size_t bytes) {
  return SetOption(Option::kProfileSampleBytes, static_cast<int64_t>(bytes));
}
// Guarded sampling's rate (guarded.h; 0: off): followed as the heap
// profile's rate is.
inline bool SetGuardedSampleBytes(size_t bytes) {
  return SetOption(Option::kGuardedSampleBytes, static_cast<int64_t>(bytes));
}
// The memory limit (0: none) and its mode (limit.h); the mode first, so a
// new limit never applies with the old mode.
inline bool SetMemoryLimit(size_t bytes, bool hard) {
  return SetOption(Option::kMemoryLimitMode, hard ? 1 : 0) &&
         SetOption(Option::kMemoryLimitBytes, static_cast<int64_t>(bytes));
}

// Parses text as a value of option o (the rules SetOption's text forms
// use), without setting it. False when o would refuse it.
bool ParseOptionValue(Option o, const char* text, int64_t* value);

// Formats option o's current value as text (the inverse of parsing).
// Returns the number of characters written (excluding the NUL).
size_t FormatOptionValue(Option o, char* buf, size_t len);

namespace options_internal {
// Reads STRATA_* from the environment once (later calls return at once).
// Never allocates. Called on the first slow path of every thread and by a
// start-up constructor.
void EnsureInitialized();
// Called after any successful change of an option (from any source), with
// the option; set by the layer that acts on changes (the release engine).
using ChangeHook = void (*)(Option o);
void SetChangeHook(ChangeHook hook);
// Restores every option to its default (tests).
void ResetForTesting();
// Reads STRATA_* again, as at start-up (tests of the environment path).
void ReadEnvironmentForTesting();
// fork(): the text options' lock is held across fork (see fork.h).
void LockForFork();
void UnlockForFork();
}  // namespace options_internal

}  // namespace strata
#endif  // __cplusplus

#ifdef __cplusplus
extern "C" {
#endif

// Sets option `name` from text, as STRATA_<NAME> would. Returns 0, or -1
// when the name is unknown or the value is refused (one line on stderr).
int strata_option_set(const char* name, const char* value);
// Sets a numeric option. Returns 0 or -1 as above.
int strata_option_set_int(const char* name, long long value);
// Writes the value of option `name` as text into buf. Returns 0, or -1 for
// an unknown name.
int strata_option_get(const char* name, char* buf, size_t len);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // STRATA_ALLOC_OPTIONS_H_
