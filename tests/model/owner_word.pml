/*
 * owner_word.pml -- a heap's owner word: the exit hook, adoption, and the
 * recovery scan that claims the heap of a thread that exited without the
 * hook, while the kernel reuses thread ids.
 *
 * What it stands for (strata's C++; memory orders as in the code, explored
 * here under sequential consistency only):
 *   - HeapEntry (alloc/heap_registry.h): owner_ = (generation << 32) | tid.
 *     BindOwner(tid) (release store of NextOwnerWord(tid): the generation
 *     read relaxed, plus one), by the heap's new holder after its pop in
 *     AcquireHeapForThread; UnbindOwner() (release store, tid 0) by the
 *     exit hook OnThreadExit BEFORE PushBack; owner_word() (acquire);
 *     ClaimFromExited(seen): compare_exchange_strong(seen, generation + 1 and
 *     tid 0, acq_rel, relaxed).
 *   - RecoverExitedHeaps (alloc/heap_registry.cc): for a heap whose state
 *     hint is kActive: read the word; tid 0 -> skip; os::ThreadExited(tid)
 *     false -> skip; else ClaimFromExited(word): the scanner now holds the
 *     heap, abandons it and pushes it back. One scan at a time (g_scan_lock).
 *   - The kernel: tgkill(pid, tid, 0) says ESRCH only once a thread has
 *     finished exiting; a tid is reused only after that. The registry's
 *     stacks are one atomic step each (tagged_stack.pml checks them).
 * Bounds: one heap; thread 1 holds it and exits with or without its exit
 * hook; thread 2 starts once (tid 1 reused, or tid 2), adopts a spare heap
 * if there is one, and exits with or without its hook; one scan, which
 * looks at the heap twice (a second pass of its loop stands for a later
 * scan).
 *
 * Safety properties (assertions):
 *   P1 the scan claims a heap only from a thread that has finished exiting
 *      without giving it back (never from a running thread, never a heap on
 *      a stack);
 *   P2 a heap is held by at most one party: a pop takes it only from the
 *      stack, a claim only from a dead thread;
 *   P3 a heap whose thread died without its hook stays recoverable: at the
 *      end, if no scan claimed it, its word still names a thread (tid != 0).
 *
 * Seeded bug (must be rejected):
 *   -DBUG_NO_GENERATION  the word holds the tid alone: a scan that read
 *                        thread 1's word, then saw tid 1 exit, claims the
 *                        heap that thread 2 (tid 1 reused) adopted
 *                        meanwhile.
 *   -DBUG_UNBIND_AFTER_PUSH  the exit hook unbinds after its push (a step in
 *                        the wrong order): it erases the binding of the
 *                        thread that popped the heap meanwhile, which then
 *                        dies without its hook and is never recovered.
 */

#define STACK 10      /* ghost holder: on a spare stack */
#define SCAN  11      /* ghost holder: the scanner */
#define DEAD  12      /* ghost: its thread died holding it (no hook) */

byte gen;             /* the word's generation ... */
byte wtid;            /* ... and tid */
byte holder;          /* ghost: thread number 1/2, STACK, SCAN or DEAD */
bool on_stack;        /* the heap is on a spare stack */
bool alive[3];        /* kernel: tid t belongs to a running (or exiting) thread */
byte finished = 0;    /* threads done (the scanner included) */

#ifdef BUG_NO_GENERATION
#define NEXT_GEN(g) (g)
#else
#define NEXT_GEN(g) ((g) + 1)
#endif

/* OnThreadExit: Abandon (not modelled: the heap is the thread's alone),
 * UnbindOwner, then PushBack. */
inline exit_with_hook(me) {
  assert(holder == me);
#ifndef BUG_UNBIND_AFTER_PUSH
  atomic { gen = NEXT_GEN(gen); wtid = 0 };    /* UnbindOwner: release store */
#endif
  atomic { holder = STACK; on_stack = 1 }      /* PushBack: release push */
#ifdef BUG_UNBIND_AFTER_PUSH
  ;
  atomic { gen = NEXT_GEN(gen); wtid = 0 }
#endif
}

/* Thread 1 runs with tid 1, holding the heap. */
proctype Thread1() {
  if
  :: exit_with_hook(1)
  :: holder = DEAD                             /* glibc skipped the hook */
  fi;
  alive[1] = 0;                                 /* its exit has finished */
  finished++
}

/* Thread 2 starts at any time (with tid 1 reused only once thread 1's exit
 * has finished): AcquireHeapForThread -> PopSpare -> BindOwner. */
proctype Thread2() {
  byte tid;
  if
  :: atomic { !alive[1] -> tid = 1; alive[1] = 1 }   /* tid reused */
  :: atomic { tid = 2; alive[2] = 1 }
  fi;
  atomic {                                      /* PopSpare: acquire pop */
    if
    :: on_stack -> on_stack = 0; assert(holder == STACK); holder = 2   /* P2 */
    :: else -> skip
    fi
  };
  if
  :: holder == 2 ->
     atomic { gen = NEXT_GEN(gen); wtid = tid };   /* BindOwner(tid) */
     if
     :: exit_with_hook(2)
     :: holder = DEAD
     fi
  :: else -> skip                               /* it made a fresh heap */
  fi;
  alive[tid] = 0;
  finished++
}

/* RecoverExitedHeaps, looking at the heap twice. */
proctype Scanner() {
  byte i, sg, st;
  do
  :: i < 2 ->
     atomic { sg = gen; st = wtid };           /* owner_word(): acquire */
     if
     :: st == 0 -> skip
     :: st != 0 && alive[st] -> skip           /* !os::ThreadExited(tid) */
     :: st != 0 && !alive[st] ->
        atomic {                                /* ClaimFromExited: acq_rel CAS */
          if
          :: gen == sg && wtid == st ->
             gen = NEXT_GEN(sg); wtid = 0;
             assert(holder == DEAD);            /* P1 */
             holder = SCAN
          :: else -> skip                       /* it changed hands */
          fi
        };
        if
        :: holder == SCAN -> atomic { holder = STACK; on_stack = 1 }   /* Abandon, PushBack */
        :: else -> skip
        fi
     fi;
     i++
  :: else -> break
  od;
  finished++
}

/* At the end: a heap whose thread died without its hook (and that no scan
 * claimed yet) can still be recovered by a later scan: its word names that
 * thread, not tid 0 (P3). */
proctype Final() {
  finished == 3;
  assert(holder != DEAD || wtid != 0)
}

init {
  atomic {
    alive[1] = 1; holder = 1; gen = 1; wtid = 1;   /* thread 1 bound */
    run Thread1(); run Thread2(); run Scanner(); run Final()
  }
}
