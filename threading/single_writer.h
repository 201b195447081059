// A value that exactly one thread writes at a time and any thread may read
// for statistics. This is the one place strata isolates its deliberate
// "racy but defined" reads: the writer uses plain-cost relaxed loads and
// stores (never a read-modify-write, so an increment costs the same mov/add/
// mov as a plain one), readers see some recent value, never a torn one.
// Ordering between writer and readers, when needed, comes from elsewhere
// (a lock, a queue hand-off, a joined thread).
#ifndef STRATA_THREADING_SINGLE_WRITER_H_
#define STRATA_THREADING_SINGLE_WRITER_H_

#include <atomic>

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

  // Relaxed: the value stands alone (see the file comment).
  T Get() const { return v_.load(std::memory_order_relaxed); }
  void Set(T v) { v_.store(v, std::memory_order_relaxed); }
  // Writer only: not atomic as a whole, which is why there is one writer.
  T Add(T d) {
    const T n = static_cast<T>(Get() + d);
    Set(n);
    return n;
  }
  T Sub(T d) {
    const T n = static_cast<T>(Get() - d);
    Set(n);
    return n;
  }

 private:
  std::atomic<T> v_;
};

}  // namespace strata::threading

#endif  // STRATA_THREADING_SINGLE_WRITER_H_
