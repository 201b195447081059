// strata's heap profiles: the public API (C++ strata::, C strata_profile_*).
//
// Turn sampling on with the profile_sample_bytes option (STRATA_PROFILE_
// SAMPLE_BYTES=2m, --strata_profile_sample_bytes, or SetProfileSampleBytes):
// about one allocation per that many bytes allocated is sampled, with its
// stack. A profile is written in the legacy heap-profile text format that
// google-pprof (Debian's google-perftools) and Go's pprof read:
//
//   google-pprof --text ./server /tmp/server.heap     (--inuse_space is the default)
//
// Counts and bytes are already scaled up to estimates of the whole heap
// (each sample weighted by its sampling probability), so the header says
// "heapprofile" and pprof applies no scaling of its own. The three views
// (heap_profile.h): live (the heap now), peak (the heap at its highest),
// since-mark (everything allocated since MarkHeapProfile()). A live profile
// also carries, in pprof's --alloc_space columns, everything allocated
// since the start.
//
// Profiles are also written at exit to profile_file (the live view) and
// profile_file.peak, and on the signal profile_signal to profile_file.<n>.
//
// Thread-safety: any thread, any time. Writing never allocates; it copies
// the view under the profile's lock and writes after releasing it, so
// samples taken meanwhile never wait for a write (a full pipe, a slow
// disk). The writes are write(2), a cancellation point, as the program's
// own: a thread cancelled in one leaves no lock held and nothing mapped.
#ifndef STRATA_ALLOC_PROFILE_H_
#define STRATA_ALLOC_PROFILE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
namespace strata {

enum class HeapProfileView { kLive, kPeak, kSinceMark };

// Writes the view to fd. Returns false when a write failed.
bool WriteHeapProfile(int fd, HeapProfileView view) noexcept;
// Writes it to a file (created or truncated, mode 0644). False on failure.
bool WriteHeapProfileToFile(const char* path, HeapProfileView view) noexcept;
// Starts the since-mark view afresh.
void MarkHeapProfile() noexcept;

// The sampling rate is the option profile_sample_bytes (options.h,
// SetProfileSampleBytes).

struct HeapProfileSummary {
  uint64_t live_bytes, live_count;  // estimated, as the live view's sums
  uint64_t peak_bytes;              // the peak view's sum
  uint64_t samples_live, samples_taken, samples_dropped, stacks;
};
HeapProfileSummary GetHeapProfileSummary() noexcept;

}  // namespace strata
#endif  // __cplusplus

#ifdef __cplusplus
extern "C" {
#endif

// view: "live", "peak" or "since-mark". Return 0, or -1 for an unknown
// view or a failed write.
int strata_profile_write(int fd, const char* view);
int strata_profile_write_file(const char* path, const char* view);
void strata_profile_mark(void);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // STRATA_ALLOC_PROFILE_H_
