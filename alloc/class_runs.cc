// A heap's runs by class (class_runs.h).
#include "alloc/class_runs.h"

namespace strata::internal {

constinit PoolDesc g_empty_pool;

void ClassRuns::SetCurrent(size_t cls, PoolDesc* d) {
  PoolDesc* old = runs_[cls];
  if (old != &g_empty_pool) {
    if (IsListEnd(old->run.free_list()) && old->run.carved() == old->capacity) {
      old->run.FallAsleep(old->capacity);
    } else {
      // Not spent: an allocation the refill let in (its drain started the
      // release thread, which allocates) made this run current meanwhile,
      // and it still has blocks to give: a partial run.
      old->run.Demote();
      LinkPartial(old);
    }
  }
  d->run.BecomeCurrent();
  runs_[cls] = d;
}

PoolDesc* ClassRuns::TakeCurrent(size_t cls) {
  PoolDesc* d = runs_[cls];
  if (d == &g_empty_pool) return nullptr;
  runs_[cls] = &g_empty_pool;
  d->run.Demote();
  return d;
}

PoolDesc* ClassRuns::TakePartial(size_t cls) {
  PoolDesc* d = partial_[cls].front();
  if (d != nullptr) UnlinkPartial(d);
  return d;
}

void ClassRuns::LinkPartial(PoolDesc* d) {
  d->run.EnterPartial();
  partial_[d->size_class].PushFront(d);
}

void ClassRuns::UnlinkPartial(PoolDesc* d) {
  partial_[d->size_class].Remove(d);
  d->run.LeavePartial();
}

bool ClassRuns::IsValid() const {
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const PoolDesc* c = runs_[cls];
    if (c != &g_empty_pool && (c->run.state() != RunState::kCurrent || c->size_class != cls || !c->IsValid())) {
      return false;
    }
    for (const PoolDesc* d = partial_[cls].front(); d != nullptr; d = d->next) {
      if (d->run.state() != RunState::kPartial || d->size_class != cls || !d->IsValid()) return false;
    }
  }
  return true;
}

}  // namespace strata::internal
