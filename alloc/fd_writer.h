// A formatter that writes text to a file descriptor through a fixed stack
// buffer. It exists because strata's diagnostics and stats must never
// allocate (printf may, std::string and iostreams do).
#ifndef STRATA_ALLOC_FD_WRITER_H_
#define STRATA_ALLOC_FD_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "alloc/os.h"

namespace strata::internal {

// Writes v in decimal to out (at least kMaxDecimal bytes, no NUL); returns
// the number of digits. The one decimal formatter of strata's no-alloc
// output: FdWriter, the options' values, the profile signal's file names.
inline constexpr size_t kMaxDecimal = 20;
inline size_t FormatDecimal(uint64_t v, char* out) {
  char tmp[kMaxDecimal];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

// Whether a FdWriter's writes are cancellation points (os.h): strata's own
// diagnostics never are; the API's output to a program's descriptor is.
enum class WriteKind { kDiagnostic, kCancellable };

// Thread-safety: a FdWriter is a local object of one thread. Output reaches
// the fd when the buffer fills, on Flush(), and on destruction: so a writer
// is never used while a strata lock is held (a full pipe would block the
// write, and everyone waiting for the lock, for as long as it stays full).
class FdWriter {
 public:
  explicit FdWriter(int fd, WriteKind kind = WriteKind::kDiagnostic)
      : fd_(fd), cancellable_(kind == WriteKind::kCancellable) {}
  ~FdWriter() { Flush(); }
  FdWriter(const FdWriter&) = delete;
  FdWriter& operator=(const FdWriter&) = delete;

  FdWriter& Str(const char* s) { return Bytes(s, strlen(s)); }
  FdWriter& Bytes(const char* s, size_t n) {
    while (n > 0) {
      if (len_ == sizeof(buf_)) Flush();
      size_t k = sizeof(buf_) - len_;
      if (k > n) k = n;
      memcpy(buf_ + len_, s, k);
      len_ += k;
      s += k;
      n -= k;
    }
    return *this;
  }
  FdWriter& Char(char c) { return Bytes(&c, 1); }

  // Unsigned decimal, right-aligned in `width` columns (0: no padding).
  FdWriter& Uint(uint64_t v, int width = 0) {
    char digits[kMaxDecimal];
    const size_t n = FormatDecimal(v, digits);
    for (int i = static_cast<int>(n); i < width; ++i) Char(' ');
    return Bytes(digits, n);
  }

  // Signed decimal; INT64_MIN prints without overflow.
  FdWriter& Int(int64_t v) {
    if (v >= 0) return Uint(static_cast<uint64_t>(v));
    Char('-');
    return Uint(static_cast<uint64_t>(-(v + 1)) + 1);
  }

  FdWriter& Hex(uint64_t v) {
    static constexpr char kDigits[] = "0123456789abcdef";
    char tmp[16];
    int n = 0;
    do {
      tmp[n++] = kDigits[v & 15];
      v >>= 4;
    } while (v != 0);
    Str("0x");
    while (n > 0) Char(tmp[--n]);
    return *this;
  }

  // Left-aligned string padded to `width` columns.
  FdWriter& Pad(const char* s, int width) {
    const size_t n = strlen(s);
    Bytes(s, n);
    for (int i = static_cast<int>(n); i < width; ++i) Char(' ');
    return *this;
  }

  // Fixed-point with one decimal, e.g. Fixed1(123, 10) prints "12.3".
  FdWriter& Fixed1(uint64_t numerator, uint64_t denominator, int width = 0) {
    const uint64_t tenths = denominator ? (numerator * 10 + denominator / 2) / denominator : 0;
    char tmp[32];
    int n = 0;
    tmp[n++] = static_cast<char>('0' + tenths % 10);
    tmp[n++] = '.';
    uint64_t whole = tenths / 10;
    do {
      tmp[n++] = static_cast<char>('0' + whole % 10);
      whole /= 10;
    } while (whole != 0);
    for (int i = n; i < width; ++i) Char(' ');
    while (n > 0) Char(tmp[--n]);
    return *this;
  }

  void Flush() {
    if (len_ > 0 && !(cancellable_ ? os::WriteAllCancellable(fd_, buf_, len_)
                                   : os::WriteAll(fd_, buf_, len_))) {
      failed_ = true;
    }
    len_ = 0;
  }

  // Flushes; false when any write so far failed (a closed fd, a full disk).
  bool FlushOk() {
    Flush();
    return !failed_;
  }

 private:
  int fd_;
  bool cancellable_;
  bool failed_ = false;
  size_t len_ = 0;
  char buf_[512];
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_FD_WRITER_H_
