#!/usr/bin/env bash
# python3 with PYTHONMALLOC=malloc, so every Python object comes from strata:
# the seed's experiment (100,000 dicts made, then deleted), then real stdlib
# test modules.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
export PYTHONMALLOC=malloc PYTHONDONTWRITEBYTECODE=1

strata "$PY" -c '
records = [{"id": i, "name": "record-%d" % i, "tags": [i, i * 2]} for i in range(100000)]
assert sum(r["id"] for r in records) == 4999950000
del records
print("seed experiment done")
' >"$TMP/seed.out" 2>"$TMP/seed.err"
grep -q "seed experiment done" "$TMP/seed.out"
# 100,000 dicts need well over 10 MB: strata must have mapped at least that.
served "$STATS" 10000000

# regrtest works in $TMPDIR/test_python_<pid>: Bazel's sandboxes share /tmp
# and number their processes alike, so concurrent runs would share (and
# delete) one directory. Keep it, and every temporary file, in this test's own.
# --timeout: a module still running after 300 s (they take seconds) dumps every
# thread's traceback and fails, well before Bazel's 900 s would, saying where.
export TMPDIR="$TMP"
strata "$PY" -m test -q --timeout=300 --tempdir="$TMP/regrtest" \
    test_dict test_list test_set test_threading test_queue >"$TMP/stdlib.out" 2>"$TMP/stdlib.err" || {
  echo "FAIL: stdlib tests"; tail -150 "$TMP/stdlib.out"; echo "--- stderr:"; tail -150 "$TMP/stdlib.err"
  echo "--- strata's statistics:"; tail -20 "$STATS"; exit 1; }
tail -3 "$TMP/stdlib.out"
grep -q "result: SUCCESS" "$TMP/stdlib.out"
served "$STATS" 1000000
echo PASS
