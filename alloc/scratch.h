// Scratch memory for what is gathered under a lock and written out after
// the lock is released (a heap profile's rows, the statistics' arena map):
// mapped from the kernel for the one call (never malloc, no strata lock
// taken), unmapped when the call is done -- or, through OnCancel
// (cancel.h), when the thread is cancelled in a write meanwhile.
#ifndef STRATA_ALLOC_SCRATCH_H_
#define STRATA_ALLOC_SCRATCH_H_

#include <cstddef>

#include "alloc/os.h"

namespace strata::internal {

// Thread-safety: a local object of one thread.
class Scratch {
 public:
  Scratch() = default;
  ~Scratch() { Release(); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  // Room for at least `bytes` (what it held before is not kept). Returns
  // false when the kernel refused the mapping (then it holds none).
  bool Reserve(size_t bytes) {
    if (bytes <= bytes_) return true;
    Release();
    const size_t size = (bytes + kPage - 1) & ~(kPage - 1);
    void* p = os::MapScratch(size);
    if (p == nullptr) return false;
    p_ = p;
    bytes_ = size;
    return true;
  }

  // The memory, as an array of T (bytes() / sizeof(T) of them).
  template <typename T>
  T* As() const {
    return static_cast<T*>(p_);
  }
  size_t bytes() const { return bytes_; }

  void Release() {
    if (p_ != nullptr) os::UnmapScratch(p_, bytes_);
    p_ = nullptr;
    bytes_ = 0;
  }

  // OnCancel's cleanup: releases the Scratch at arg.
  static void ReleaseOnCancel(void* arg) { static_cast<Scratch*>(arg)->Release(); }

 private:
  static constexpr size_t kPage = 4096;
  void* p_ = nullptr;  // the mapping, or nullptr
  size_t bytes_ = 0;   // its size
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_SCRATCH_H_
