#!/usr/bin/env bash
# Test of //tools/viz:record_timeline on a real run: the phases workload
# under libstrata.so, sampled every 10 ms, must leave a sample file with the
# growth in it and a PNG; a failing command's status comes back; bad
# arguments fail clearly. Also draws the exit dump of a preloaded program
# (STRATA_STATS_ON_EXIT, json-arenas) with stats_viewer.
set -euo pipefail
viz="$TEST_SRCDIR/strata/tools/viz"
record="$viz/record_timeline"
tmp="$TEST_TMPDIR"
py=/usr/bin/python3

source "$viz/viz_test_lib.sh"

"$record" --out="$tmp/t.png" --samples="$tmp/s.jsonl" --interval_ms=10 --title="phases" -- \
  "$viz/phases" --mib=48 --step_ms=30 --idle_ms=300 >"$tmp/out" 2>"$tmp/err" ||
  { cat "$tmp/out" "$tmp/err"; fail "record_timeline exited $?"; }
cat "$tmp/out" "$tmp/err"
grep -q "phases: done" "$tmp/out" || fail "the command's output is missing"
is_png "$tmp/t.png" || fail "t.png is not a PNG"
[ "$(stat -c %s "$tmp/t.png")" -ge 15000 ] || fail "t.png is too small"
lines=$(wc -l <"$tmp/s.jsonl")
[ "$lines" -ge 20 ] || fail "only $lines samples"
# The growth is in the samples: the peak of live bytes is at least 40 MiB.
"$py" - "$tmp/s.jsonl" <<'PY' || fail "the samples do not show the 48 MiB the workload allocates"
import json, sys
peak = max(json.loads(l)["live_bytes"] for l in open(sys.argv[1]) if l.strip())
print(f"peak live bytes {peak >> 20} MiB")
sys.exit(0 if peak >= 40 << 20 else 1)
PY

# The command's failure comes back (the picture is still drawn).
status=0
"$record" --out="$tmp/f.png" --samples="$tmp/f.jsonl" --interval_ms=5 -- \
  sh -c "'$viz/phases' --mib=8 --step_ms=10 --idle_ms=50 >/dev/null; exit 3" \
  >/dev/null 2>"$tmp/err" || status=$?
[ "$status" -eq 3 ] || { cat "$tmp/err"; fail "exit status $status, expected the command's 3"; }
grep -q "exited with status 3" "$tmp/err" || fail "no note of the command's status"
is_png "$tmp/f.png" || fail "f.png is not a PNG"

# Bad arguments.
status=0
"$record" --out="$tmp/x.png" >/dev/null 2>"$tmp/err" || status=$?
[ "$status" -eq 2 ] && grep -q "no command given" "$tmp/err" || fail "no command: $(cat "$tmp/err")"
status=0
"$record" --interval_ms=abc -- true >/dev/null 2>"$tmp/err" || status=$?
[ "$status" -eq 2 ] && grep -q "interval_ms wants" "$tmp/err" || fail "bad interval: $(cat "$tmp/err")"
status=0
"$record" --bogus -- true >/dev/null 2>"$tmp/err" || status=$?
[ "$status" -eq 2 ] && grep -q "unknown argument '--bogus'" "$tmp/err" || fail "bad flag: $(cat "$tmp/err")"
# A command too short to be sampled: the plot step says why.
status=0
TMPDIR="$tmp" "$record" --out="$tmp/n.png" --interval_ms=1000 -- true >/dev/null 2>"$tmp/err" ||
  status=$?
[ "$status" -eq 2 ] && grep -q "holds no samples" "$tmp/err" || fail "no samples: $(cat "$tmp/err")"
ls "$tmp"/strata_samples.* >/dev/null 2>&1 && fail "the empty temporary sample file was left behind"

# The exit dump of a preloaded plain-malloc program, drawn.
lib="$TEST_SRCDIR/strata/alloc/libstrata.so"
LD_PRELOAD="$lib" STRATA_STATS_ON_EXIT="$tmp/exit.json" STRATA_STATS_FORMAT=json-arenas \
  "$viz/phases" --mib=16 --step_ms=0 --idle_ms=0 >/dev/null
"$viz/stats_viewer" "$tmp/exit.json" --out="$tmp/exit.png" >/dev/null
is_png "$tmp/exit.png" || fail "exit.png is not a PNG"
echo "PASS"
