// A value that exactly one thread writes at a time and any thread may read
// for statistics. This is the one place strata isolates its deliberate racy
// reads. The writer reads and writes it like a plain variable (an increment
// stays a single add to memory: this sits on the allocation fast path);
// readers load it with a relaxed atomic load and see some recent value,
// never a torn one (an aligned word is written by one instruction on
// x86-64). Ordering between writer and readers, when needed, comes from
// elsewhere (a lock, a queue hand-off, a joined thread).
//
// Under ThreadSanitizer the value is a std::atomic written with relaxed
// load/store pairs instead, which is the semantics strata relies on, so the
// checker verifies everything else without flagging this one race by design.
#ifndef STRATA_THREADING_SINGLE_WRITER_H_
#define STRATA_THREADING_SINGLE_WRITER_H_

#include <atomic>
#include <type_traits>

#if defined(__SANITIZE_THREAD__)
#define STRATA_SINGLE_WRITER_ATOMIC 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRATA_SINGLE_WRITER_ATOMIC 1
#endif
#endif

namespace strata::threading {

// REQUIRES: at most one thread calls the mutators at any time (ownership
// may move between threads through a synchronising hand-off).
template <typename T>
class SingleWriter {
 public:
  constexpr SingleWriter() : v_(T{}) {}
  constexpr explicit SingleWriter(T v) : v_(v) {}
  SingleWriter(const SingleWriter&) = delete;
  SingleWriter& operator=(const SingleWriter&) = delete;

#ifdef STRATA_SINGLE_WRITER_ATOMIC
  // Relaxed: the value stands alone (see the file comment).
  T Get() const { return v_.load(std::memory_order_relaxed); }
  void Set(T v) { v_.store(v, std::memory_order_relaxed); }
#else
  // Relaxed: as above; the writer's own reads could be plain, but one load
  // for everyone keeps the compiler from caching the value across calls.
  T Get() const { return __atomic_load_n(&v_, __ATOMIC_RELAXED); }
  void Set(T v) { v_ = v; }
#endif
  // Writer only: not atomic as a whole, which is why there is one writer.
  T Add(T d) {
#ifdef STRATA_SINGLE_WRITER_ATOMIC
    const T n = static_cast<T>(Get() + d);
    Set(n);
    return n;
#else
    return v_ = static_cast<T>(v_ + d);
#endif
  }
  // Writer only: subtracts one and says whether the result, read as a
  // signed number, is <= 0. On x86-64 this is one `sub` to memory whose
  // flags the caller's branch uses directly (the compiler alone loads,
  // subtracts, stores and tests: five instructions on the free fast path).
  bool DecrementToNonPositive() {
#if !defined(STRATA_SINGLE_WRITER_ATOMIC) && defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
    if constexpr (sizeof(T) == 4) {
      bool non_positive;
      asm("subl $1, %0" : "+m"(v_), "=@ccle"(non_positive));
      return non_positive;
    }
#endif
    using Signed = std::make_signed_t<T>;
    return static_cast<Signed>(Sub(T{1})) <= 0;
  }
  T Sub(T d) {
#ifdef STRATA_SINGLE_WRITER_ATOMIC
    const T n = static_cast<T>(Get() - d);
    Set(n);
    return n;
#else
    return v_ = static_cast<T>(v_ - d);
#endif
  }

 private:
#ifdef STRATA_SINGLE_WRITER_ATOMIC
  std::atomic<T> v_;
#else
  T v_;
#endif
};

}  // namespace strata::threading

#endif  // STRATA_THREADING_SINGLE_WRITER_H_
