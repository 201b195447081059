/*
 * remote_exit.pml -- blocks freed by another thread travel to an owner that
 * may exit; its heap is then adopted whole by a new thread or absorbed by a
 * running one, while the release engine may collect its queue.
 *
 * What it stands for (strata's C++; memory orders as in the code, explored
 * here under sequential consistency only):
 *   - The remote free (alloc/free_path.h FreeUncached/FreeRemote): the
 *     freeing thread reads arena->owner (acquire) and links the block into
 *     its outgoing batch for that heap (BatchRemote -> OutgoingBatches::Push;
 *     a slot taken by another target is flushed first: Retarget); the batch
 *     is handed over by OutgoingBatches::Flush -> IncomingQueue::Push (one
 *     release CAS). The queue itself is one atomic push and one atomic
 *     take-all here: batch_queue.pml checks its steps.
 *   - Heap::DrainRemote's sink (alloc/heap.cc) over IncomingQueue::Drain:
 *     NextOf(seg.last) is read before the segment is handed on; an arena in
 *     the owner thread's arena cache is spliced without a look at its owner;
 *     otherwise arena->owner is re-read (acquire): our own -> remembered (by
 *     the owner thread only) and spliced (FreeSegmentToRun ->
 *     Run::PushSegment); another heap's -> forwarded block by block, each
 *     link read before the push rewrites it: the owner thread through its
 *     outgoing batches (BatchRemote), any other drainer straight to the new
 *     owner's queue (IncomingQueue::PushOne).
 *   - Thread exit (OnThreadExit -> Heap::Abandon, alloc/heap_registry.cc,
 *     heap.cc): under the slow lock as owner: ArenaCache::ForgetAll,
 *     DrainRemote, OutgoingBatches::FlushAndForget; then PushBack to the
 *     orphan stack (the heap still owns an arena with a live block). The
 *     class caches' return (ReturnCached), the runs' demotion and release,
 *     and UnbindOwner (owner_word.pml) are left out.
 *   - Adoption (AcquireHeapForThread -> PopSpare: an orphan, else a free
 *     heap): the new thread holds the heap whole, forgets its arena cache,
 *     and drains it on its slow path (Heap::TakeFromRuns step 2) and takes
 *     the run's list (Run::TakeList).
 *   - Absorption (Heap::CollectOrphans, from the absorber's AllocateSlow,
 *     which holds its own slow lock): PopOrphan, the orphan's slow lock as
 *     another thread (OtherLockHolder), DrainRemote as the orphan,
 *     FlushOutgoing, MoveArenaFrom (arena->owner store, release), then
 *     RetireAbsorbed (free stack) and SweepFreeHeaps (pop a free heap, drain
 *     and forward its queue under its slow lock, push it back).
 *   - The release engine's pass (release.cc PassLocked): an orphan decayed
 *     by its exclusive holder (ForEachOrphanExclusive -> Heap::Decay,
 *     exclusive: OtherLockHolder, DrainRemote, PushBack), then the
 *     collection of a live heap's queue (Heap::Decay, !exclusive: TryLock of
 *     the heap's slow lock, DrainRemote as a non-owner, collecting_, Unlock).
 *   - The registry's stacks are one atomic step per push or pop here, a pop
 *     taking any heap on the stack (a superset of LIFO): tagged_stack.pml
 *     checks them. OwnerLock is a lock whose acquisition blocks until free.
 *
 * Bounds: heaps A (1) and C (2), one arena X with one run of 3 blocks;
 * thread B frees blocks 1 and 2 (block 3 stays live, so A is orphaned with
 * an arena); A's thread exits; a new thread D adopts a spare heap; C's
 * thread absorbs an orphan and sweeps one free heap, then drains its own
 * queue; the release engine's pass decays an orphan if there is one, then
 * tries one collection of A.
 *
 * Safety properties (assertions):
 *   P1 a block is spliced onto the run or sent on only by the drainer that
 *      took it from a queue (never twice, never one handed out, still in a
 *      batch or in another queue), and handed out only from the run's list
 *      (never twice): the ghost `where` of each block;
 *   P2 the run is touched (splice, TakeList) only by the heap that owns its
 *      arena, holding that heap's slow lock; the arena moves only under the
 *      old owner's slow lock;
 *   P3 a heap is held by one thread at a time, and drained only by its slow
 *      lock's holder;
 *   P4 no block is lost: at quiescence (every queue drained by its heap's
 *      holder), every freed block is on the run's list or handed out, the
 *      list holds exactly the blocks the ghost says, and the run's used
 *      count is the live block plus those handed out.
 *
 * Seeded bugs (each must be rejected):
 *   -DBUG_NO_RECHECK   the sink splices every segment as its own, without
 *                      re-reading arena->owner (a missing re-check): a block
 *                      that reached A after X moved to C lands on C's run
 *                      under A's lock.
 *   -DBUG_KEEP_CACHE   neither Abandon nor AcquireHeapForThread forgets the
 *                      arena cache: the next thread on heap A trusts a
 *                      stale entry for X.
 *   -DBUG_ABSORB_NO_LOCK  the absorber drains and moves the orphan's arena
 *                      without its slow lock: it races the release engine.
 *   -DBUG_FORWARD_NEXT_AFTER_PUSH  a forwarded segment's next block is read
 *                      after the push that rewrote the link (a step in the
 *                      wrong order): the forwarder follows a block it no
 *                      longer holds into the new owner's queue.
 */

#define NB 3
#define X_RUN 0

#define NOBODY 0
#define HA 1          /* heap A */
#define HC 2          /* heap C */

/* thread ids (lock holders, heap holders) */
#define TA 1
#define TB 2
#define TC 3
#define TD 4
#define TE 5
#define TF 6          /* the final check */

/* ghost states of a block */
#define LIVE    0
#define BATCHED 1     /* in some thread's outgoing batch */
#define QUEUED  2     /* in a heap's queue */
#define ONRUN   3
#define HANDED  4
#define DRAINING 5    /* taken from a queue by a drainer, not yet spliced or sent on */

byte next[NB + 1];    /* the link (first word) */
byte seglast[NB + 1]; /* THE SEGMENT WORD */
byte seglen[NB + 1];
byte where[NB + 1];   /* ghost */

byte owner = HA;      /* ArenaHeader::owner of arena X (atomic) */
byte rfree;           /* Run::free_ of X's run */
byte used = NB;       /* Run::used_ */
byte qh[3];           /* each heap's IncomingQueue head */
byte lk[3];           /* each heap's slow lock: its holder (0: free) */
byte holder[3];       /* ghost: the thread holding each heap (0: on a stack) */
byte cache[3];        /* ArenaCache: X is in heap h's cache */
bool on_orphans[3];   /* the orphan stack */
bool on_free[3];      /* the free stack */
byte done = 0;

/* ---- the queue, one atomic step each (batch_queue.pml checks it) ---- */

/* IncomingQueue::Push(first, last): Link::Set(last, head) + release CAS */
inline q_push(h, first, last) {
  atomic {
    next[last] = qh[h]; qh[h] = first;
    x = first;
    do
    :: x != 0 && where[x] == BATCHED -> where[x] = QUEUED; x = next[x]
    :: else -> break
    od
  }
}

/* ---- an outgoing batch (the thread's own; one slot: one target) ---- */
/* OutgoingBatches::Push with every block in one run; Retarget flushes a
 * slot that holds another target's batch first. */
inline batch_push(b, to) {
  if
  :: otarget != to && ohead != 0 -> q_push(otarget, ohead, otail); ohead = 0; otail = 0
  :: else -> skip
  fi;
  atomic {                                      /* private: no other thread looks */
    otarget = to;
    assert(where[b] == LIVE || where[b] == DRAINING); /* freed, or forwarded (P1) */
    where[b] = BATCHED;
    next[b] = ohead;
    if
    :: ohead == 0 -> otail = b; oseg = 1
    :: else -> oseg++
    fi;
    seglast[b] = otail; seglen[b] = oseg;   /* one run: one open segment */
    ohead = b
  }
}
inline flush() {
  if
  :: ohead != 0 -> q_push(otarget, ohead, otail); ohead = 0; otail = 0; oseg = 0
  :: else -> skip
  fi
}

/* ---- Heap::DrainRemote on heap h by thread me; mine: the owner thread ---- */
inline splice(h, me, first, last, n) {
  atomic {
    assert(owner == h && lk[h] == me);          /* P2 */
    x = first; k = 0;
    do
    :: k < n -> assert(x != 0 && where[x] == DRAINING); /* P1 */
                where[x] = ONRUN; k++;
                if :: k < n -> x = next[x] :: else -> skip fi
    :: else -> break
    od;
    assert(x == last)
  }
  next[last] = rfree;                           /* Run::PushSegment */
  rfree = first;
  tmp = used;
  used = tmp - n
}

inline drain(h, mine, me) {
  assert(lk[h] == me);                          /* P3 */
  atomic {                                      /* TakeAll: acquire exchange */
    b = qh[h]; qh[h] = 0;
    x = b;                                      /* ghost: the chain is ours */
    do
    :: x != 0 -> assert(where[x] == QUEUED); where[x] = DRAINING; x = next[x]
    :: else -> break
    od
  }
  do
  :: b == 0 -> break
  :: else ->
     atomic { sl = seglast[b]; n = seglen[b] }  /* SegmentOf */
     nx = next[sl];                             /* NextOf(seg.last), first */
#ifdef BUG_NO_RECHECK
     o = h;
#else
     if
     :: mine && cache[h] -> o = h               /* ArenaCache::Holds: ours */
     :: else -> o = owner;                      /* acquire re-read */
        if :: mine && o == h -> cache[h] = 1 :: else -> skip fi   /* Remember */
     fi;
#endif
     if
     :: o == h -> splice(h, me, b, sl, n)
     :: else ->                                 /* forwarded, block by block */
        k = 0;
        do
        :: k < n ->
#ifndef BUG_FORWARD_NEXT_AFTER_PUSH
           if :: k + 1 < n -> fx = next[b] :: else -> fx = 0 fi;   /* before the push */
#endif
           if
           :: mine -> batch_push(b, o)          /* BatchRemote */
           :: else ->                           /* IncomingQueue::PushOne */
              atomic {
                assert(where[b] == DRAINING);   /* P1 */
                where[b] = BATCHED; seglast[b] = b; seglen[b] = 1
              };
              q_push(o, b, b)
           fi;
#ifdef BUG_FORWARD_NEXT_AFTER_PUSH
           if :: k + 1 < n -> fx = next[b] :: else -> fx = 0 fi;
#endif
           b = fx; k++
        :: else -> break
        od
     fi;
     b = nx
  od
}

/* Run::TakeList by heap h's lock holder: the list goes to the class cache,
 * its blocks are handed out. */
inline take_list(h, me) {
  if
  :: owner == h && rfree != 0 ->
     atomic {
       assert(lk[h] == me);                     /* P2 */
       x = rfree; k = 0;
       do
       :: x != 0 -> assert(where[x] == ONRUN); where[x] = HANDED; k++; x = next[x]   /* P1 */
       :: else -> break
       od
     };
     rfree = 0;
     tmp = used;
     used = tmp + k
  :: else -> skip
  fi
}

#define LOCK(h, me)   atomic { lk[h] == 0 -> lk[h] = me }
#define UNLOCK(h)     lk[h] = 0
#define TRYLOCK(h, me, ok) atomic { if :: lk[h] == 0 -> lk[h] = me; ok = 1 :: else -> ok = 0 fi }

/* registry stacks: a pop takes any heap on the stack */
#define POP(stack, h, me) \
  atomic { \
    if \
    :: stack[HA] -> h = HA \
    :: stack[HC] -> h = HC \
    :: else -> h = 0 \
    fi; \
    if :: h != 0 -> stack[h] = 0; assert(holder[h] == 0); holder[h] = me :: else -> skip fi \
  }
#define PUSH(stack, h, me) \
  atomic { assert(holder[h] == me); holder[h] = 0; stack[h] = 1 }

/* Thread B frees blocks 1 and 2 of A's run remotely, then hands its batch
 * over (its batch fills, it takes new pools, or it exits). */
proctype Freer() {
  byte b, x, o, ohead, otail, otarget, oseg;
  b = 1;
  do
  :: b <= 2 ->
     o = owner;                                 /* acquire */
     batch_push(b, o);
     b++
  :: else -> break
  od;
  flush();
  done++
}

/* A's thread: maybe one slow-path drain, then exit. */
proctype OwnerA() {
  byte b, nx, sl, n, o, x, k, tmp, fx, ohead, otail, otarget, oseg;
  if
  :: LOCK(HA, TA); drain(HA, 1, TA); UNLOCK(HA)
  :: skip
  fi;
  /* OnThreadExit -> Abandon */
  LOCK(HA, TA);
#ifndef BUG_KEEP_CACHE
  cache[HA] = 0;                                /* ArenaCache::ForgetAll */
#endif
  drain(HA, 1, TA);
  flush();                                      /* FlushAndForget */
  UNLOCK(HA);
  PUSH(on_orphans, HA, TA);                     /* PushBack: owns X */
  done++
}

/* C's thread, in AllocateSlow (its own slow lock held): CollectOrphans(1),
 * then a later slow path drains its own queue and takes the run's list. */
proctype Absorber() {
  byte b, nx, sl, n, o, x, k, tmp, fx, h, ohead, otail, otarget, oseg;
  LOCK(HC, TC);
  POP(on_orphans, h, TC);
  if
  :: h != 0 ->
#ifndef BUG_ABSORB_NO_LOCK
     LOCK(h, TC);                               /* OtherLockHolder */
     drain(h, 0, TC);
#else
     drain(h, 0, lk[h]);
#endif
     /* MoveArenaFrom(orphan, X) */
     atomic {
#ifndef BUG_ABSORB_NO_LOCK
       assert(owner == h && lk[h] == TC);       /* P2 */
#endif
       owner = HC
     };
#ifndef BUG_ABSORB_NO_LOCK
     UNLOCK(h);
#endif
     PUSH(on_free, h, TC)                       /* RetireAbsorbed */
  :: else -> skip
  fi;
  /* SweepFreeHeaps */
  POP(on_free, h, TC);
  if
  :: h != 0 ->
     if
     :: qh[h] != 0 -> LOCK(h, TC); drain(h, 0, TC); UNLOCK(h)
     :: else -> skip
     fi;
     PUSH(on_free, h, TC)
  :: else -> skip
  fi;
  UNLOCK(HC);
  /* a later refill: drains its own queue, takes the run's list */
  LOCK(HC, TC);
  drain(HC, 1, TC);
  take_list(HC, TC);
  UNLOCK(HC);
  done++
}

/* A new thread: AcquireHeapForThread -> PopSpare, then a refill. */
proctype NewThread() {
  byte b, nx, sl, n, o, x, k, tmp, fx, h, ohead, otail, otarget, oseg;
  POP(on_orphans, h, TD);
  if :: h == 0 -> POP(on_free, h, TD) :: else -> skip fi;
  if
  :: h != 0 ->
#ifndef BUG_KEEP_CACHE
     cache[h] = 0;                              /* ArenaCache::ForgetAll */
#endif
     LOCK(h, TD);
     drain(h, 1, TD);
     take_list(h, TD);
     UNLOCK(h);
     flush()                                    /* at its exit, at the latest */
  :: else -> skip
  fi;
  done++
}

/* The release engine's pass (PassLocked): 1. ForEachOrphanExclusive ->
 * Heap::Decay(exclusive): an orphan popped, its slow lock as another
 * thread, its queue drained, PushBack (it still owns X); 2. Heap::Decay
 * (!exclusive) on A: TryLock, a collection, Unlock. */
proctype ReleasePass() {
  byte b, nx, sl, n, o, x, k, tmp, fx, ok, h, ohead, otail, otarget, oseg;
  POP(on_orphans, h, TE);
  if
  :: h != 0 ->
     LOCK(h, TE); drain(h, 0, TE); UNLOCK(h);
     PUSH(on_orphans, h, TE)
  :: else -> skip
  fi;
  /* (its own heap is not A: this != tls_heap; the kCollectQueuedBytes
   * threshold is left out: it may collect whenever the lock is free) */
  TRYLOCK(HA, TE, ok);
  if
  :: ok -> drain(HA, 0, TE); UNLOCK(HA)
  :: else -> skip
  fi;
  done++
}

/* Quiescence: every queue drained by a holder of its heap, until empty;
 * then P4. */
proctype Final() {
  byte b, nx, sl, n, o, x, k, tmp, fx, h, r, ohead, otail, otarget, oseg;
  done == 5;
  r = 0;
  do
  :: r < 3 ->
     h = HA;
     do
     :: h <= HC -> LOCK(h, TF); drain(h, 0, TF); UNLOCK(h); h++
     :: else -> break
     od;
     r++
  :: else -> break
  od;
  atomic {
    assert(qh[HA] == 0 && qh[HC] == 0);
    assert(where[1] == ONRUN || where[1] == HANDED);
    assert(where[2] == ONRUN || where[2] == HANDED);
    x = rfree; k = 0;
    do
    :: x != 0 -> assert(where[x] == ONRUN && k < NB); k++; x = next[x]
    :: else -> break
    od;
    n = (where[1] == ONRUN) + (where[2] == ONRUN);
    assert(k == n);
    assert(used == 1 + (where[1] == HANDED) + (where[2] == HANDED))
  }
}

init {
  atomic {
    holder[HA] = TA; holder[HC] = TC;
    cache[HA] = 1;                              /* A's thread knows X */
    run Freer(); run OwnerA(); run Absorber(); run NewThread(); run ReleasePass(); run Final()
  }
}
