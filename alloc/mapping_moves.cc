// The moves protocol (mapping_moves.h): movers' spans and the one reader.
#include "alloc/mapping_moves.h"

#include <atomic>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "threading/backoff.h"
#include "threading/spin_lock.h"

namespace strata::internal {
namespace {

// SYNCHRONIZATION: see mapping_moves.h.
std::atomic<uint64_t> g_begun{0};
std::atomic<uint64_t> g_ended{0};
std::atomic<bool> g_exclusive{false};
constinit threading::SpinLock g_reader_lock;
// Spans this thread is inside (nested spans count once).
constinit thread_local uint32_t tls_depth ABSL_ATTRIBUTE_INITIAL_EXEC = 0;

// True when no move was in flight at the first load and none began before
// the second; `begun` is then the count to compare against afterwards.
bool Quiet(uint64_t* begun) {
  // seq_cst: g_ended first (acquire: the ended moves' writes are visible),
  // then g_begun; see THE PROTOCOL for why this order.
  const uint64_t ended = g_ended.load(std::memory_order_seq_cst);
  *begun = g_begun.load(std::memory_order_seq_cst);
  return *begun == ended;
}

}  // namespace

void MoveSpan::BeginMove() {
  if (tls_depth++ != 0) return;  // counted by the outermost span
  threading::Backoff backoff;
  for (;;) {
    // seq_cst: the count is ordered before the flag's load (Dekker pair
    // with ReadWithoutMoves' exclusive phase); acquire: this move's writes
    // come after a reader's closing RMW that this reads from.
    g_begun.fetch_add(1, std::memory_order_seq_cst);
    if (!g_exclusive.load(std::memory_order_seq_cst)) return;
    // A reader is waiting for quiet: withdraw, wait until it is done.
    g_ended.fetch_add(1, std::memory_order_seq_cst);
    // Acquire pairs with the reader's release store of false.
    while (g_exclusive.load(std::memory_order_acquire)) backoff.Pause();
  }
}

void MoveSpan::EndMove() {
  if (--tls_depth != 0) return;
  // Release (seq_cst): the move's writes before a reader's load of g_ended.
  g_ended.fetch_add(1, std::memory_order_seq_cst);
}

int ReadWithoutMoves(void (*read)(void* arg), void* arg, int optimistic_tries) {
  threading::SpinLockHolder hold(&g_reader_lock);
  threading::Backoff backoff;
  int calls = 0;
  for (int attempt = 0; attempt < optimistic_tries; ++attempt) {
    uint64_t begun;
    if (Quiet(&begun)) {
      read(arg);
      ++calls;
      // A read-modify-write, so that the reads above are ordered before it
      // (release), and a mover whose Begin comes later reads from it. The
      // value unchanged: no move began while we read.
      if (g_begun.fetch_add(0, std::memory_order_seq_cst) == begun) return calls;
    }
    backoff.Pause();
  }
  // Movers wait in Begin from now on; those in flight end (they hold no
  // heap lock we need, and wait for nothing of ours).
  g_exclusive.store(true, std::memory_order_seq_cst);
  uint64_t begun;
  while (!Quiet(&begun)) backoff.Pause();
  read(arg);
  ++calls;
  // Release pairs with the movers' acquire loads while they wait.
  g_exclusive.store(false, std::memory_order_release);
  return calls;
}

bool ReaderWaitingForTesting() {
  // Acquire pairs with the reader's stores (a test polls it).
  return g_exclusive.load(std::memory_order_acquire);
}

// Held from fork's prepare handler to the parent's or child's (fork.cc): a
// hand-over the analysis cannot follow across functions.
void LockMovesForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_reader_lock.Lock(); }

void UnlockMovesForFork(bool in_child) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (in_child) {
    // Relaxed: the child has one thread, which is in no span (fork is not
    // called from inside strata).
    g_ended.store(g_begun.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  g_reader_lock.Unlock();
}

}  // namespace strata::internal
