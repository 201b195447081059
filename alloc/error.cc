#include "alloc/error.h"

#include <cstdint>

#include "alloc/fd_writer.h"
#include "alloc/os.h"

namespace strata::internal {

void ReportInvalidFree(const void* p, const char* what, const char* op) {
  {
    FdWriter w(2);
    w.Str("strata: ").Str(op).Str("(").Hex(reinterpret_cast<uintptr_t>(p)).Str("): ").Str(what).Str("\n");
  }
  os::Abort();
}

}  // namespace strata::internal
