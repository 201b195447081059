/*
 * batch_queue.pml -- the remote-free batch queue of one heap, from the
 * producers' outgoing batches to the drain's splice onto the runs.
 *
 * What it stands for (strata's C++; memory orders as in the code, explored
 * here under sequential consistency only):
 *   - OutgoingBatches::Push (alloc/outgoing_batches.h): a producer links a
 *     freed block at the head of its private batch and keeps the open
 *     segment (run, last block, length) in THE SEGMENT WORD of the newest
 *     block (free_link.h). Private to the producer: one d_step.
 *   - OutgoingBatches::Flush -> IncomingQueue::Push ->
 *     threading::MpscQueue::PushBatch (threading/mpsc_queue.h): relaxed load
 *     of head_, Link::Set(last, old_head), compare_exchange_weak(release,
 *     relaxed) retried with the value it saw.
 *   - MpscQueue::TakeAll: relaxed emptiness pre-check, then
 *     head_.exchange(nullptr, acquire).
 *   - IncomingQueue::Drain with Heap::DrainRemote's sink: for each segment,
 *     SegmentOf(first) gives (last, blocks); NextOf(last) is read BEFORE the
 *     sink's FreeSegment; FreeSegmentToRun -> Run::PushSegment
 *     (alloc/run.h): SetLink(last, free_), free_ = first, used_.Sub(blocks)
 *     (SingleWriter: a load and a store).
 *   - The drain runs under the heap's slow lock (threading/owner_lock.h):
 *     the owner on a slow path (OwnerLock::LockAsOwner, CAS acquire), the
 *     release engine collecting the queue of an owner in no slow path
 *     (Heap::Decay, !exclusive: OwnerLock::TryLock, CAS acquire), both
 *     released by a release store. A CAS loop that spins until the lock is
 *     free is modelled as a guard that blocks until it is.
 *   - Run::TakeList (alloc/run.cc), called by Heap::TakeFromRuns under the
 *     slow lock: the run's whole list goes to the class cache and its blocks
 *     count as in use again (handed out).
 *
 * Bounds: 2 producers, 5 blocks of 2 runs (every block >= 16 bytes, so each
 * batch carries segment words), 3 batches; the owner drains twice and takes
 * a run's list once; the release engine tries one collection. Arena
 * ownership never changes here (remote_exit.pml covers forwarding).
 *
 * Safety properties (assertions):
 *   P1 no block is spliced twice, nor a block that was not queued
 *      (the ghost `where` of each block moves QUEUED -> ONRUN once);
 *   P2 no block is handed out twice (TakeList takes only ONRUN blocks);
 *   P3 no block is lost: at the end, after a last drain, every block is on
 *      its run's list or handed out, each run's list holds exactly its ONRUN
 *      blocks, and its used_ count equals its live blocks;
 *   P4 the runs are touched under the slow lock only (mutual exclusion).
 *
 * Seeded bugs (each must be rejected):
 *   -DBUG_LINK_AFTER_CAS  PushBatch publishes the chain before linking its
 *                         last block to the old head (a step in the wrong
 *                         order): the drain follows a stale link, blocks
 *                         are lost.
 *   -DBUG_NEXT_AFTER_SPLICE  the drain reads the link out of a segment after
 *                         splicing it onto the run (a step in the wrong
 *                         order): it walks into the run's free list.
 *   -DBUG_COLLECT_NO_LOCK the collector drains without TryLock (a missing
 *                         lock): two splices onto one run race, one is lost.
 */

#define NB 5          /* blocks 1..NB; 0 is null */
#define NR 2          /* runs 0..NR-1 */

/* ghost states of a block */
#define LIVE    0     /* held by the program, not yet freed */
#define BATCHED 1     /* in a producer's outgoing batch (private) */
#define QUEUED  2     /* in the queue, or taken by a drainer and not yet spliced */
#define ONRUN   3     /* on its run's free list */
#define HANDED  4     /* handed out again (TakeList) */

byte next[NB + 1];    /* each block's first word: the link */
byte seglast[NB + 1]; /* THE SEGMENT WORD: the segment's last block ... */
byte seglen[NB + 1];  /* ... and its length */
byte run_of[NB + 1];  /* the run a block belongs to (the shape: fixed) */
byte where[NB + 1];   /* ghost */

byte head;            /* MpscQueue::head_ */
byte rfree[NR];       /* Run::free_ (0: the list's end) */
byte used[NR];        /* Run::used_ (the blocks in use) */

#define FREE_LOCK  0
#define OWNER_LOCK 1
#define OTHER_LOCK 2
byte lock = FREE_LOCK;   /* OwnerLock::state_ */
byte done = 0;

/* ---- a producer's outgoing slot: OutgoingBatches::Push (private) ---- */
/* ohead/otail/seg_run/seg_last/seg_blocks are the producer's locals. */
#define BATCH_PUSH(b) \
  d_step { \
    next[b] = ohead; \
    if \
    :: seg_run == run_of[b] + 1 -> seg_blocks++ \
    :: else -> seg_run = run_of[b] + 1; seg_last = b; seg_blocks = 1 \
    fi; \
    seglast[b] = seg_last; seglen[b] = seg_blocks; \
    if :: ohead == 0 -> otail = b :: else -> skip fi; \
    ohead = b; \
    assert(where[b] == LIVE); where[b] = BATCHED \
  }

/* ghost: every block of the private chain becomes QUEUED at the CAS */
#define MARK_QUEUED(first) \
  x = first; \
  do \
  :: x != 0 && where[x] == BATCHED -> where[x] = QUEUED; x = next[x] \
  :: else -> break \
  od

/* OutgoingBatches::Flush -> MpscQueue::PushBatch(ohead, otail) */
#define FLUSH \
  old = head;                                   /* relaxed first guess */ \
  do \
  :: \
    PUSH_LINK_BEFORE; \
    atomic {                                    /* CAS release/relaxed */ \
      if \
      :: head == old -> head = ohead; MARK_QUEUED(ohead); break \
      :: else -> old = head                     /* the value it saw */ \
      fi \
    } \
  od; \
  PUSH_LINK_AFTER; \
  d_step { ohead = 0; otail = 0; seg_run = 0; seg_last = 0; seg_blocks = 0 }

#ifdef BUG_LINK_AFTER_CAS
#define PUSH_LINK_BEFORE skip
#define PUSH_LINK_AFTER  next[otail] = old
#else
#define PUSH_LINK_BEFORE next[otail] = old      /* Link::Set(last, old_head) */
#define PUSH_LINK_AFTER  skip
#endif

/* IncomingQueue::Drain with the sink of Heap::DrainRemote (the arena is
 * the heap's own: FreeSegmentToRun). REQUIRES the slow lock (checked). */
inline drain(me) {
  assert(lock == me);
  atomic {                                      /* TakeAll */
    b = head;                                   /* relaxed pre-check ... */
    if
    :: b != 0 -> head = 0                       /* ... exchange(nullptr, acquire) */
    :: else -> skip
    fi
  }
  do
  :: b == 0 -> break
  :: else ->
    d_step { r = run_of[b]; sl = seglast[b]; n = seglen[b] }   /* SegmentOf */
#ifndef BUG_NEXT_AFTER_SPLICE
    nx = next[sl];                              /* NextOf(seg.last) first */
#endif
    /* Run::PushSegment(first = b, last = sl, blocks = n) */
    d_step {                                    /* ghost: P1 */
      assert(lock == me);                       /* P4 */
      x = b; k = 0;
      do
      :: k < n -> assert(x != 0 && where[x] == QUEUED && run_of[x] == r);
                  where[x] = ONRUN; k++;
                  if :: k < n -> x = next[x] :: else -> skip fi
      :: else -> break
      od;
      assert(x == sl)
    }
    next[sl] = rfree[r];                        /* SetLink(last, free_) */
    rfree[r] = b;                               /* free_ = first */
    tmp = used[r];                              /* used_.Sub(blocks) */
    used[r] = tmp - n;
#ifdef BUG_NEXT_AFTER_SPLICE
    nx = next[sl];
#endif
    b = nx
  od
}

/* Run::TakeList under the slow lock: the run's list leaves whole. */
inline take_list(me, rr) {
  assert(lock == me);
  x = rfree[rr];
  rfree[rr] = 0;
  d_step {                                      /* ghost: P2; the count */
    k = 0;
    do
    :: x != 0 -> assert(where[x] == ONRUN && run_of[x] == rr);
                 where[x] = HANDED; k++; x = next[x]
    :: else -> break
    od
  }
  tmp = used[rr];                               /* used_.Add(count) */
  used[rr] = tmp + k
}

proctype Producer1() {
  byte ohead, otail, seg_run, seg_last, seg_blocks, old, x;
  /* one batch of two segments: blocks 1, 2 of run 0, then 3 of run 1 */
  BATCH_PUSH(1); BATCH_PUSH(2); BATCH_PUSH(3);
  FLUSH;
  /* a second batch: block 4 of run 0 */
  BATCH_PUSH(4);
  FLUSH;
  done++
}

proctype Producer2() {
  byte ohead, otail, seg_run, seg_last, seg_blocks, old, x;
  BATCH_PUSH(5);
  FLUSH;
  done++
}

/* The owner: two slow paths that drain (Heap::TakeFromRuns step 2); the
 * second also takes run 0's list for its class cache (step 1 of the next
 * refill). */
proctype Owner() {
  byte b, nx, r, sl, n, x, k, tmp;
  atomic { lock == FREE_LOCK -> lock = OWNER_LOCK };   /* LockAsOwner */
  drain(OWNER_LOCK);
  lock = FREE_LOCK;                                    /* UnlockAsOwner */
  atomic { lock == FREE_LOCK -> lock = OWNER_LOCK };
  drain(OWNER_LOCK);
  take_list(OWNER_LOCK, 0);
  lock = FREE_LOCK;
  done++
}

/* The release engine: Heap::Decay(!exclusive) collects the queue when
 * TryLock succeeds (the kCollectQueuedBytes threshold is left out: it may
 * collect whenever the lock is free). */
proctype Collector() {
  byte b, nx, r, sl, n, x, k, tmp;
#ifdef BUG_COLLECT_NO_LOCK
  drain(lock);                                         /* no lock taken */
#else
  atomic {                                             /* TryLock */
    if
    :: lock == FREE_LOCK -> lock = OTHER_LOCK
    :: else -> skip
    fi
  }
  if
  :: lock == OTHER_LOCK ->
    drain(OTHER_LOCK);
    lock = FREE_LOCK                                   /* Unlock */
  :: else -> skip
  fi
#endif
  done++
}

/* Quiescence: one last drain, then P3. */
proctype Final() {
  byte b, nx, r, sl, n, x, k, tmp;
  byte onrun[NR];
  done == 4;
  atomic { lock == FREE_LOCK -> lock = OWNER_LOCK };
  drain(OWNER_LOCK);
  lock = FREE_LOCK;
  d_step {
    assert(head == 0);
    /* every block is back: on its run's list, or handed out (P3) */
    x = 1;
    do
    :: x <= NB -> assert(where[x] == ONRUN || where[x] == HANDED);
                  if :: where[x] == ONRUN -> onrun[run_of[x]]++ :: else -> skip fi;
                  x++
    :: else -> break
    od;
    /* each run's list holds exactly its ONRUN blocks; used_ counts the rest */
    r = 0;
    do
    :: r < NR ->
      x = rfree[r]; k = 0;
      do
      :: x != 0 -> assert(where[x] == ONRUN && run_of[x] == r && k < NB); k++; x = next[x]
      :: else -> break
      od;
      assert(k == onrun[r]);
      n = 0; x = 1;
      do
      :: x <= NB -> if :: run_of[x] == r && where[x] == HANDED -> n++ :: else -> skip fi; x++
      :: else -> break
      od;
      assert(used[r] == n);
      r++
    :: else -> break
    od
  }
}

init {
  atomic {
    run_of[1] = 0; run_of[2] = 0; run_of[3] = 1; run_of[4] = 0; run_of[5] = 0;
    used[0] = 4; used[1] = 1;   /* every block starts live (handed out) */
    run Producer1(); run Producer2(); run Owner(); run Collector(); run Final()
  }
}
