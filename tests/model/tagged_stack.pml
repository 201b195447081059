/*
 * tagged_stack.pml -- the ABA-tagged Treiber stacks of heaps: the registry's
 * orphan and free stacks, as its callers use them.
 *
 * What it stands for (strata's C++; memory orders as in the code, explored
 * here under sequential consistency only):
 *   - threading::TaggedStack (threading/tagged_stack.h): the head word packs
 *     (pointer, tag); Pack() bumps the tag on every successful push and pop.
 *     Push: relaxed load of head_, Next.store(Unpack(old), relaxed),
 *     compare_exchange_weak(old, Pack(node, old), release, relaxed), retried
 *     with the value it saw. Pop: acquire load of head_; if the top is not
 *     null, a relaxed and possibly stale load of top->Next (nodes are
 *     type-stable: never unmapped, the read is always safe), then
 *     compare_exchange_weak(old, Pack(next, old), acquire, acquire).
 *   - The callers in alloc/heap_registry.cc and alloc/heap.cc:
 *       AcquireHeapForThread -> PopSpare: an orphan, else a free heap, held
 *         as the new thread's own; when that thread exits, OnThreadExit ->
 *         PushBack: to the orphan stack (it owns arenas) or the free stack;
 *       Heap::CollectOrphans: PopOrphan, absorb, RetireAbsorbed (free stack),
 *         then SweepFreeHeaps: pops free heaps, pushes them back in reverse;
 *       ForEachOrphanExclusive (the release pass): pops every orphan,
 *         chaining them privately THROUGH THE SAME stack_next_ field (relaxed
 *         stores a concurrent popper may read), then PushBack each (orphan or
 *         free stack, by whether it still owns arenas: a free choice here).
 * Bounds: 3 heaps (two orphans, one free heap at the start), 3 threads (a
 * new thread that later exits, an absorber, the release pass), each making
 * the calls above once; the sweep pops one free heap.
 *
 * Safety properties (assertions):
 *   P1 a pop hands out only a heap that is on that stack, and no heap is
 *      held by two threads at once (the ghost `holder` of each heap);
 *   P2 a push is made only by the heap's holder;
 *   P3 no heap is lost: at the end every heap is on exactly one stack, each
 *      stack's list holds exactly the heaps the ghost says, with no cycle.
 *   Reading a popped node's next (possibly rewritten by its new holder) is
 *   the "reader that may still follow it": it is safe only because the node
 *   is type-stable and the tag makes the CAS fail; P1/P3 check the latter.
 *
 * Seeded bug (must be rejected):
 *   -DBUG_NO_TAG  Pack() keeps the tag: a popper that read (A, A->next)
 *                 before A was popped, B moved away and A pushed back
 *                 installs the stale next: ABA.
 */

#define NH 3          /* heaps 1..NH; 0 is null */
#define ORPHANS 0
#define FREE    1

/* ghost holder of a heap: 1..4 a thread; ON_ORPHANS / ON_FREE a stack */
#define ON_ORPHANS 10
#define ON_FREE    11
#define ON(s) (10 + s)

byte next[NH + 1];    /* Heap::stack_next_ */
byte hp[2];           /* TaggedStack::head_: the pointer ... */
byte ht[2];           /* ... and the tag */
byte holder[NH + 1];  /* ghost */
byte done = 0;

#ifdef BUG_NO_TAG
#define BUMP(t) (t)
#else
#define BUMP(t) ((t) + 1)
#endif

/* TaggedStack::Push(node) on stack s, by thread me */
inline push(s, node, me) {
  assert(holder[node] == me);                   /* P2 */
  op = hp[s]; ot = ht[s];                       /* relaxed load */
  do
  :: next[node] = op;                           /* Next.store(Unpack(old), relaxed) */
     atomic {                                   /* CAS release, relaxed */
       if
       :: hp[s] == op && ht[s] == ot ->
          hp[s] = node; ht[s] = BUMP(ot); holder[node] = ON(s); break
       :: else -> op = hp[s]; ot = ht[s]
       fi
     }
  od
}

/* got = TaggedStack::Pop() on stack s, by thread me */
inline pop(s, got, me) {
  op = hp[s]; ot = ht[s];                       /* acquire load */
  do
  :: op == 0 -> got = 0; break
  :: else ->
     nx = next[op];                             /* relaxed, possibly stale */
     atomic {                                   /* CAS acquire, acquire */
       if
       :: hp[s] == op && ht[s] == ot ->
          hp[s] = nx; ht[s] = BUMP(ot);
          assert(holder[op] == ON(s));          /* P1 */
          holder[op] = me; got = op; break
       :: else -> op = hp[s]; ot = ht[s]
       fi
     }
  od
}

/* Thread 2 starts: AcquireHeapForThread -> PopSpare; later it exits. */
proctype NewThread() {
  byte op, ot, nx, h;
  pop(ORPHANS, h, 2);
  if
  :: h == 0 -> pop(FREE, h, 2)
  :: else -> skip
  fi;
  if
  :: h != 0 ->
     if
     :: push(ORPHANS, h, 2)
     :: push(FREE, h, 2)
     fi
  :: else -> skip
  fi;
  done++
}

/* Thread 3 absorbs an orphan: Heap::CollectOrphans(1) -> PopOrphan,
 * RetireAbsorbed, then SweepFreeHeaps (here: up to 2). */
proctype Absorber() {
  byte op, ot, nx, h, s1;
  pop(ORPHANS, h, 3);
  if
  :: h != 0 -> push(FREE, h, 3)
  :: else -> skip
  fi;
  pop(FREE, s1, 3);
  if :: s1 != 0 -> push(FREE, s1, 3) :: else -> skip fi;
  done++
}

/* The release pass: ForEachOrphanExclusive. */
proctype ReleasePass() {
  byte op, ot, nx, h, taken, n;
  do
  :: pop(ORPHANS, h, 4);
     if
     :: h == 0 -> break
     :: else -> next[h] = taken; taken = h      /* private chain, relaxed */
     fi
  od;
  do
  :: taken == 0 -> break
  :: else ->
     n = next[taken];
     if                                         /* PushBack */
     :: push(ORPHANS, taken, 4)
     :: push(FREE, taken, 4)
     fi;
     taken = n
  od;
  done++
}

/* Quiescence: P3. */
proctype Final() {
  byte s, x, k, c;
  done == 3;
  d_step {
    x = 1;
    do
    :: x <= NH -> assert(holder[x] == ON_ORPHANS || holder[x] == ON_FREE); x++
    :: else -> break
    od;
    s = 0; c = 0;
    do
    :: s < 2 ->
       x = hp[s]; k = 0;
       do
       :: x != 0 -> assert(holder[x] == ON(s) && k < NH); k++; x = next[x]
       :: else -> break
       od;
       c = c + k; s++
    :: else -> break
    od;
    assert(c == NH)
  }
}

init {
  atomic {
    /* orphans: 2 -> 3; free: 1 */
    hp[ORPHANS] = 2; next[2] = 3; next[3] = 0; hp[FREE] = 1; next[1] = 0;
    holder[1] = ON_FREE; holder[2] = ON_ORPHANS; holder[3] = ON_ORPHANS;
    run NewThread(); run Absorber(); run ReleasePass(); run Final()
  }
}
