#!/usr/bin/env bash
# Test of //tools/viz:plot_timeline on sample files shaped like strata's
# sampler output (record_timeline_test feeds it a real run): one file, two
# files, a file two processes appended to, and bad input, which must fail
# with status 2 and a clear line, never a Python traceback.
set -euo pipefail
plot="$TEST_SRCDIR/strata/tools/viz/plot_timeline"
tmp="$TEST_TMPDIR"
py=/usr/bin/python3

source "$TEST_SRCDIR/strata/tools/viz/viz_test_lib.sh"

# check_png FILE: a PNG, 800..1600 px wide, 300..3000 px high, 15 KB..1 MB.
check_png() { png_within "$1" 800 1600 300 3000 15000 1000000; }
# expect_error WHAT PATTERN ARGS...: the plotter must exit 2 with PATTERN.
expect_error() { tool_error "$plot" "$@"; }

# samples FILE SECONDS PEAK_MIB: a run that grows to PEAK_MIB, frees, then
# gives the memory back, one sample every 20 ms.
samples() {
  "$py" - "$@" <<'PY'
import json, sys
path, seconds, peak = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]) << 20
n = int(seconds * 50)
with open(path, "a") as f:
    for i in range(n):
        x = i / n
        live = int(peak * min(1, x * 3)) if x < 0.5 else int(peak * 0.02)
        free_res = int(peak * 0.95) if 0.5 <= x < 0.75 else int(peak * 0.03)
        rss = live + free_res + (4 << 20)
        f.write(json.dumps({"t_ms": i * 20, "rss_bytes": rss, "live_bytes": live,
                            "mapped_bytes": rss + (2 << 20), "free_resident_bytes": free_res,
                            "released_bytes": 0 if x < 0.75 else peak}) + "\n")
PY
}

samples "$tmp/a.jsonl" 3 300
"$plot" "$tmp/a.jsonl" --out="$tmp/a.png" --title="test run" >"$tmp/out"
cat "$tmp/out"
grep -q "wrote $tmp/a.png (1 run(s), 150 samples)" "$tmp/out" || fail "unexpected summary line"
check_png "$tmp/a.png"
"$plot" "$tmp/a.jsonl" --out="$tmp/a.svg" >/dev/null
head -c 300 "$tmp/a.svg" | grep -q "<svg" || fail "a.svg is not an SVG"

# Two files, two panels, named by --label.
samples "$tmp/b.jsonl" 1.5 120
"$plot" "$tmp/a.jsonl" "$tmp/b.jsonl" --label=first --label=second --out="$tmp/ab.png" >"$tmp/out"
grep -q "2 run(s)" "$tmp/out" || fail "two files should give two runs"
check_png "$tmp/ab.png"
"$plot" "$tmp/a.jsonl" "$tmp/b.jsonl" --own_scales --out="$tmp/own.png" >/dev/null
check_png "$tmp/own.png"

# A file two processes appended to: two runs, with a warning.
cat "$tmp/a.jsonl" "$tmp/b.jsonl" >"$tmp/both.jsonl"
"$plot" "$tmp/both.jsonl" --out="$tmp/both.png" >"$tmp/out" 2>"$tmp/err"
grep -q "holds 2 runs" "$tmp/err" || { cat "$tmp/err"; fail "no warning about two runs"; }
grep -q "2 run(s)" "$tmp/out" || fail "the appended file should give two runs"

# A last line cut short (the process killed while writing): left out.
cp "$tmp/b.jsonl" "$tmp/cut.jsonl"
printf '{"t_ms":99999,"rss_by' >>"$tmp/cut.jsonl"
"$plot" "$tmp/cut.jsonl" --out="$tmp/cut.png" >/dev/null 2>"$tmp/err"
grep -q "cut short" "$tmp/err" || { cat "$tmp/err"; fail "no warning about the cut line"; }

# Bad input.
expect_error "missing file" "cannot read" "$tmp/none.jsonl" --out="$tmp/x.png"
: >"$tmp/empty.jsonl"
expect_error "no samples" "holds no samples" "$tmp/empty.jsonl" --out="$tmp/x.png"
{ head -3 "$tmp/a.jsonl"; echo "garbage"; tail -2 "$tmp/a.jsonl"; } >"$tmp/bad.jsonl"
expect_error "bad line" "bad.jsonl:4: not a JSON sample line" "$tmp/bad.jsonl" --out="$tmp/x.png"
echo '{"t_ms": 0, "rss_bytes": 1}' >"$tmp/short.jsonl"
expect_error "missing keys" "sample has no live_bytes, mapped_bytes" "$tmp/short.jsonl" --out="$tmp/x.png"
echo '{"t_ms": 0, "rss_bytes": -5, "live_bytes": 0, "mapped_bytes": 0}' >"$tmp/neg.jsonl"
expect_error "negative" '"rss_bytes" should be an integer >= 0' "$tmp/neg.jsonl" --out="$tmp/x.png"
echo '{"version":1,"pid":7,"live_bytes":0}' >"$tmp/dump.jsonl"
expect_error "a stats dump" "draw it with stats_viewer" "$tmp/dump.jsonl" --out="$tmp/x.png"
expect_error "bad extension" "should end in .png, .svg or .pdf" "$tmp/a.jsonl" --out="$tmp/x.jpeg"
expect_error "label count" "2 --label for 1 files" "$tmp/a.jsonl" --label=a --label=b --out="$tmp/x.png"
echo "PASS"
