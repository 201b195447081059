#include "alloc/limit.h"

#include <atomic>

#include "alloc/fd_writer.h"
#include "alloc/options.h"

namespace strata::internal {
namespace {

// SYNCHRONIZATION: all relaxed. The footprint is a counter whose CAS is
// the reservation itself (no memory is published with it);
// the hook pointer is set once at start-up, before any mapping races it.
std::atomic<uint64_t> g_footprint{0};
std::atomic<uint64_t> g_footprint_peak{0};
std::atomic<uint64_t> g_soft_events{0};
std::atomic<uint64_t> g_soft_over{0};
std::atomic<uint64_t> g_hard_refusals{0};
// The limit the last refusal message named: one line per limit value.
std::atomic<int64_t> g_reported_limit{-1};
std::atomic<LimitReleaseFn> g_release{nullptr};

// Adds bytes to the footprint unless that would pass `limit` (0: no
// limit). A compare-and-swap, so that a charge that does not fit is never
// seen by other threads, not even for a moment.
bool TryAdd(uint64_t bytes, int64_t limit) {
  uint64_t now = g_footprint.load(std::memory_order_relaxed);
  do {
    if (limit != 0 && now + bytes > static_cast<uint64_t>(limit)) return false;
  } while (!g_footprint.compare_exchange_weak(now, now + bytes, std::memory_order_relaxed));
  return true;
}

void ReportRefusal(int64_t limit, size_t bytes) {
  if (g_reported_limit.exchange(limit, std::memory_order_relaxed) == limit) return;
  FdWriter w(2);
  w.Str("strata: memory_limit_bytes=").Uint(static_cast<uint64_t>(limit))
      .Str(" (hard) refused a mapping of ").Uint(bytes).Str(" bytes: allocation failed (ENOMEM)\n");
}

}  // namespace

bool ChargeFootprint(size_t bytes, bool optional) {
  const int64_t limit = GetOption(Option::kMemoryLimitBytes);
  if (TryAdd(bytes, limit)) return true;
  // Over. A mapping strata can do without (a sampled block's) is simply
  // not made: it neither releases caches nor counts as an event.
  if (optional) return false;
  // Give back what the caches hold, then look again.
  const bool hard = GetOption(Option::kMemoryLimitMode) == 1;
  if (!hard) g_soft_events.fetch_add(1, std::memory_order_relaxed);
  if (LimitReleaseFn release = g_release.load(std::memory_order_relaxed)) release();
  if (TryAdd(bytes, limit)) return true;
  if (hard) {
    g_hard_refusals.fetch_add(1, std::memory_order_relaxed);
    ReportRefusal(limit, bytes);
    return false;
  }
  g_soft_over.fetch_add(1, std::memory_order_relaxed);
  TryAdd(bytes, 0);
  return true;
}

void NoteMapped() {
  const uint64_t now = g_footprint.load(std::memory_order_relaxed);
  uint64_t peak = g_footprint_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_footprint_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void UnchargeFootprint(size_t bytes) { g_footprint.fetch_sub(bytes, std::memory_order_relaxed); }

bool UnderPressure() {
  const int64_t limit = GetOption(Option::kMemoryLimitBytes);
  if (limit == 0) return false;
  return g_footprint.load(std::memory_order_relaxed) > static_cast<uint64_t>(limit) / 8 * 7;
}

void SetLimitReleaseHook(LimitReleaseFn fn) { g_release.store(fn, std::memory_order_relaxed); }

LimitStats GetLimitStats() {
  return {g_footprint.load(std::memory_order_relaxed), g_footprint_peak.load(std::memory_order_relaxed),
          g_soft_events.load(std::memory_order_relaxed), g_soft_over.load(std::memory_order_relaxed),
          g_hard_refusals.load(std::memory_order_relaxed)};
}

}  // namespace strata::internal
