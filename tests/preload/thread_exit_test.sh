#!/usr/bin/env bash
# Threads that leave through pthread key destructors (key_dtor_exit.cc):
# 10,000 in sequence, a quarter calling pthread_exit from a key destructor
# that runs before strata's, a quarter allocating and freeing other threads'
# blocks in every destructor round after strata's exit hook, a quarter
# calling pthread_exit after allocating there. Each such thread's heap must
# be recovered: few heaps, bounded memory (before, one heap and its arenas
# stayed with each of half of them: 5,002 heaps, 2 GB mapped, 1.1 GB RSS).
# thread_exit_test_checked runs the checked build.
source "$(dirname "$0")/lib.sh"
PROG="$(dirname "$0")/key_dtor_exit"

rc=0
strata "$PROG" 10000 >"$TMP/out" 2>"$TMP/run.err" || rc=$?
cat "$TMP/out"
[ "$rc" -eq 0 ] || { echo "FAIL: exit $rc"; cat "$TMP/run.err"; exit 1; }
grep -Eq "^keys: low=[0-9]+ strata=[0-9]+ high=[0-9]+$" "$TMP/out" || { echo "FAIL: no key order line"; exit 1; }
served "$STATS"

rss_kib=$(awk '/^rss_kib/ {print $2}' "$TMP/out")
# glibc ends at about 2 MiB, strata at about 10 MiB.
[ "$rss_kib" -le 32768 ] || { echo "FAIL: RSS $rss_kib KiB at the end (bound 32768)"; cat "$STATS"; exit 1; }
echo "ok: RSS $rss_kib KiB at the end"

heaps=$(grep "^# heaps:" "$STATS")
created=$(echo "$heaps" | awk '{print $3}')
recovered=$(echo "$heaps" | sed -E 's/.* ([0-9]+) recovered.*/\1/')
[ "$created" -le 64 ] || { echo "FAIL: $heaps (bound 64 created)"; exit 1; }
[ "$recovered" -gt 0 ] || { echo "FAIL: $heaps (none recovered)"; exit 1; }
echo "ok: $heaps"
