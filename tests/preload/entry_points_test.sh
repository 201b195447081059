#!/usr/bin/env bash
# Two programs of our own, run with libstrata.so preloaded: one mixing every
# entry point (and memory glibc handed out), one forking under load.
source "$(dirname "$0")/lib.sh"
DIR="$(dirname "$0")"
# libstrata.so must export every replaced entry point, C++ operators included
# (otherwise a preloaded program's new/delete stay libstdc++'s).
for sym in malloc free calloc realloc aligned_alloc posix_memalign memalign valloc pvalloc \
    malloc_usable_size reallocarray free_sized free_aligned_sized __libc_malloc __libc_free \
    _Znwm _Znam _ZnwmRKSt9nothrow_t _ZnamRKSt9nothrow_t _ZnwmSt11align_val_t _ZnamSt11align_val_t \
    _ZnwmSt11align_val_tRKSt9nothrow_t _ZnamSt11align_val_tRKSt9nothrow_t _ZdlPv _ZdaPv _ZdlPvm \
    _ZdaPvm _ZdlPvSt11align_val_t _ZdaPvSt11align_val_t _ZdlPvmSt11align_val_t \
    _ZdaPvmSt11align_val_t _ZdlPvRKSt9nothrow_t _ZdaPvRKSt9nothrow_t \
    _ZdlPvSt11align_val_tRKSt9nothrow_t _ZdaPvSt11align_val_tRKSt9nothrow_t; do
  nm -D --defined-only "$LIB" | grep -q " T $sym\$" || { echo "FAIL: libstrata.so does not export $sym"; exit 1; }
done
echo "ok: libstrata.so exports every entry point it replaces"
strata "$DIR/mix" >"$TMP/mix.out" 2>"$TMP/mix.err" || { cat "$TMP/mix.err"; exit 1; }
grep -q "mix: ok" "$TMP/mix.out"
served "$STATS" 100000
grep -q "foreign frees: [1-9][0-9]* returned to glibc" "$STATS" || { echo "FAIL: glibc memory was not returned to glibc"; cat "$STATS"; exit 1; }
# main() ends with pthread_exit; the process must end with its last thread
# (strata's background thread must not keep it alive).
start=$(date +%s)
strata timeout 20 "$DIR/last_thread_exit" >"$TMP/last.out" 2>"$TMP/last.err" || {
  echo "FAIL: last_thread_exit did not end by itself (exit $?)"; cat "$TMP/last.err"; exit 1; }
grep -q "worker done" "$TMP/last.out"
[ $(( $(date +%s) - start )) -lt 10 ] || { echo "FAIL: last_thread_exit lingered"; exit 1; }
echo "ok: the process ends with its last thread"
strata "$DIR/fork_load" >"$TMP/fork.out" 2>"$TMP/fork.err" || { cat "$TMP/fork.out" "$TMP/fork.err"; exit 1; }
cat "$TMP/fork.out"
served "$STATS" 100000
echo PASS
