#!/usr/bin/env bash
# tools/check_layers.sh itself can fail: an unranked file, an include of a
# higher layer, an include of an unranked header and threading/ reaching
# into alloc/ are each reported; a tree that keeps the layers passes.
set -uo pipefail
check=$1
dir=${TEST_TMPDIR:-$(mktemp -d)}/layers
rm -rf "$dir"; mkdir -p "$dir/alloc" "$dir/threading"
fail=0

printf '#include "alloc/config.h"\n' >"$dir/alloc/heap.cc"
printf '#include "alloc/heap.h"\n' >"$dir/alloc/init.cc"
printf '#include "threading/spin_lock.h"\n' >"$dir/threading/backoff.h"
if ! out=$("$check" "$dir/alloc/heap.cc" "$dir/alloc/init.cc" "$dir/threading/backoff.h" 2>&1); then
  echo "FAIL: a layered tree was refused: $out"; fail=1
fi

printf '#include "alloc/config.h"\n' >"$dir/alloc/brand_new.cc"
printf '#include "alloc/heap.h"\n' >"$dir/alloc/os.cc"
printf '#include "alloc/not_ranked.h"\n' >"$dir/alloc/arena.cc"
printf '#include "alloc/os.h"\n' >"$dir/threading/mpsc_queue.h"
if out=$("$check" "$dir/alloc/brand_new.cc" "$dir/alloc/os.cc" "$dir/alloc/arena.cc" \
    "$dir/threading/mpsc_queue.h" 2>&1); then
  echo "FAIL: a broken tree passed: $out"; fail=1
fi
for want in "brand_new.cc: not in check_layers.sh's ranks" \
    "os.cc: os (rank 0) may not include higher layer alloc/heap.h" \
    "arena.cc: includes alloc/not_ranked.h, which check_layers.sh does not rank" \
    "mpsc_queue.h: threading/ may not include alloc/os.h"; do
  case "$out" in *"$want"*) ;; *) echo "FAIL: missing report: $want"; fail=1 ;; esac
done
[ "$fail" -eq 0 ] && echo PASS
exit "$fail"
