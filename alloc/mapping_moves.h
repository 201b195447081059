// Moves of mapped memory between the holders the statistics count, made
// atomic for one reader: a stats snapshot (GetStats) never sees one half
// done, so the retention rows sum to exactly the bytes mapped from the OS
// at every snapshot, under load too. This file is the protocol only; the
// moves are made by the arena source, the heaps, the large blocks, the
// metadata allocator and the page map, each inside a MoveSpan.
//
// What is a move: a change of the bytes mapped together with the holder's
// own count of them, which happen one after the other: a reservation mapped
// and an arena carved from it (the OS count, the reservation left, a new
// arena record), an empty arena unmapped, a large mapping made or unmapped,
// a metadata chunk, a page-map leaf. What is not: an arena changing hands
// (heap, empty stack, another heap: the reader walks arenas by their
// records, each once, wherever it is; stats.cc), blocks moving inside an
// arena (the reader sees each arena whole, under its heap's lock) and large
// blocks moving between live and the cache (the reader splits the large
// mapped bytes itself).
//
// THE PROTOCOL (a sequence lock with many writers and one reader)
//  - A mover brackets its move with a MoveSpan: Begin counts it in
//    g_begun, End in g_ended. Nested spans (a carve that maps a page-map
//    leaf) count once (a thread-local depth).
//  - The reader (ReadWithoutMoves) reads g_ended, then g_begun: equal means
//    no move was in flight and none began between the two reads. It then
//    reads, and re-reads g_begun: unchanged means no move began while it
//    read. Otherwise it tries again. After kOptimisticTries failed tries it
//    sets g_exclusive: new movers wait in Begin until it is done, and it
//    waits for the ones in flight to end, then reads once more. So a
//    snapshot always completes, however busy the movers.
//  - REQUIRES (for movers): no heap metadata lock held at an outermost
//    Begin (the reader takes heap locks while movers wait in Begin). Other
//    locks are fine: the reader takes no other strata lock while movers
//    wait.
//  - Cost: two atomic read-modify-writes and a load per move (slow paths:
//    per arena, per large mapping, per metadata chunk). Nothing on the
//    allocation or free fast paths.
//
// SYNCHRONIZATION
//  - g_begun, g_ended, g_exclusive: seq_cst. The reader's "flag, then
//    counts" and the mover's "count, then flag" are a Dekker pair (each
//    side's store must be ordered before its load of the other's: only
//    seq_cst orders a store before a later load, and there are no
//    standalone fences). g_ended's increment releases a move's writes to
//    the reader's load of it (acquire); the reader's closing RMW on
//    g_begun releases its reads before any later mover's Begin RMW, which
//    reads from it (acquire).
//  - The depth: thread-local.
//  - One reader at a time: g_reader_lock (taken before heap locks; fork
//    holds it across the fork).
#ifndef STRATA_ALLOC_MAPPING_MOVES_H_
#define STRATA_ALLOC_MAPPING_MOVES_H_

namespace strata::internal {

// Marks a move for its lifetime (see THE PROTOCOL). Thread-safety: any
// thread; REQUIRES: no heap metadata lock held, unless nested in another
// span of this thread.
class MoveSpan {
 public:
  MoveSpan() { BeginMove(); }
  ~MoveSpan() { EndMove(); }
  MoveSpan(const MoveSpan&) = delete;
  MoveSpan& operator=(const MoveSpan&) = delete;

 private:
  static void BeginMove();
  static void EndMove();
};

// Optimistic calls before a reader makes movers wait.
inline constexpr int kOptimisticTries = 8;

// Calls read(arg) at a moment no move is in flight or begins: the first of
// up to `optimistic_tries` calls that no move overlapped, else one more
// call while movers wait. Returns the number of calls made (tests).
// Readers are serialised. Thread-safety: any thread, never inside a
// MoveSpan.
int ReadWithoutMoves(void (*read)(void* arg), void* arg, int optimistic_tries = kOptimisticTries);

// True while a reader makes movers wait (tests).
bool ReaderWaitingForTesting();

// fork(): the reader lock is held across fork (fork.cc). In the child the
// counts are made equal: the threads that were moving do not exist there
// (an arena one of them was moving stays where it was when the fork froze
// it, counted by no holder: the child's snapshots are short of it).
void LockMovesForFork();
void UnlockMovesForFork(bool in_child);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_MAPPING_MOVES_H_
