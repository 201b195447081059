// A heap's release budget (release_budget.h).
#include "alloc/release_budget.h"

#include "absl/base/optimization.h"
#include "alloc/config.h"
#include "alloc/limit.h"
#include "alloc/options.h"
#include "alloc/owned_arenas.h"

namespace strata::internal {

size_t ReleaseBudget::Bytes() {
  // Near a soft memory limit, no thread keeps spare pools (limit.h).
  if (ABSL_PREDICT_FALSE(UnderPressure())) return 0;
  const auto total = static_cast<uint64_t>(GetOption(Option::kTotalCacheBytes));
  if (CachedPoolBytesAllHeaps() > total) return 0;
  return static_cast<size_t>(GetOption(Option::kThreadCacheBytes));
}

void ReleaseBudget::Checked(size_t free_pools, size_t budget) {
  // (Free pools of arenas pinned by live blocks stay with the heap, purged
  // by the release policy; handing such arenas to other threads was tried
  // and measured: a thread still freeing its blocks turned its own frees
  // into remote ones and the carriers multiplied, see ARCHITECTURE.md.)
  const size_t step = budget / kPoolSize / 4 > 16 ? budget / kPoolSize / 4 : 16;
  next_check_pools_ = free_pools + step;
}

bool ReleaseBudget::DecayDue(uint64_t now, int64_t delay_ms) {
  if (now < next_decay_ms_) return false;
  next_decay_ms_ = now + DecayIntervalMs(delay_ms);
  return true;
}

}  // namespace strata::internal
