#!/usr/bin/env bash
# Test of //tools/viz:stats_viewer on real dumps from strata (the fragment
# workload) and on bad input: every picture must be a PNG (or SVG) of a
# sensible size, and every bad input must fail with status 2 and one clear
# line, never a Python traceback.
set -euo pipefail
viz="$TEST_SRCDIR/strata/tools/viz"
viewer="$viz/stats_viewer"
tmp="$TEST_TMPDIR"
py=/usr/bin/python3

source "$viz/viz_test_lib.sh"

# check_png FILE: a PNG, 800..2600 px wide, 500..2000 px high, 20 KB..4 MB.
check_png() { png_within "$1" 800 2600 500 2000 20000 4000000; }
# expect_error WHAT PATTERN ARGS...: the viewer must exit 2 with PATTERN.
expect_error() { tool_error "$viewer" "$@"; }

# A real dump with the arena map: live and orphaned heaps, empty arenas.
"$viz/fragment" --threads=3 --mib=12 --orphans=1 --out="$tmp/dump.json"
"$viewer" "$tmp/dump.json" --out="$tmp/map.png" >"$tmp/out"
cat "$tmp/out"
grep -q "wrote $tmp/map.png" "$tmp/out" || fail "no 'wrote' line"
check_png "$tmp/map.png"

# SVG by extension; the default name is the dump's with .png.
"$viewer" "$tmp/dump.json" --out="$tmp/map.svg" >/dev/null
head -c 300 "$tmp/map.svg" | grep -q "<svg" || fail "map.svg is not an SVG"
"$viewer" "$tmp/dump.json" >/dev/null
check_png "$tmp/dump.png"

# A plain JSON dump (no arena map): drawn, with a clear note.
"$viz/fragment" --threads=2 --mib=4 --arenas=0 --out="$tmp/plain.json"
"$viewer" "$tmp/plain.json" --out="$tmp/plain.png" 2>"$tmp/err" >/dev/null
grep -q "has no arena map" "$tmp/err" || { cat "$tmp/err"; fail "no note about the missing map"; }
check_png "$tmp/plain.png"

# Several dumps in one file (stats_on_exit appends): the last by default.
cat "$tmp/plain.json" "$tmp/dump.json" >"$tmp/two.json"
"$viewer" "$tmp/two.json" --out="$tmp/two.png" 2>"$tmp/err" >/dev/null
grep -q "holds 2 dumps" "$tmp/err" || { cat "$tmp/err"; fail "no note about two dumps"; }
"$viewer" "$tmp/two.json" --index=0 --out="$tmp/first.png" 2>"$tmp/err" >/dev/null
grep -q "has no arena map" "$tmp/err" || fail "--index=0 should draw the plain dump"
expect_error "index out of range" "holds 2 dump(s); --index=5 is out of range" \
  "$tmp/two.json" --index=5 --out="$tmp/x.png"

# Thousands of arenas (the real dump's arenas, copied at other addresses):
# wrapped into columns, then summarised several to a row; the figure's size
# stays capped.
for n in 900 6000; do
  "$py" - "$tmp/dump.json" "$tmp/big$n.json" "$n" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
src, n = d["arenas"], int(sys.argv[3])
d["arenas"] = []
for i in range(n):
    a = dict(src[i % len(src)])
    a["base"] = hex(0x100000000000 + i * 0x40000)
    if a["heap"]:
        a["heap"] = a["heap"] + 10 * (i // len(src) % 20)
    d["arenas"].append(a)
json.dump(d, open(sys.argv[2], "w"))
PY
  "$viewer" "$tmp/big$n.json" --out="$tmp/big$n.png" >"$tmp/out"
  cat "$tmp/out"
  check_png "$tmp/big$n.png"
done
grep -q "arenas per row" "$tmp/out" || fail "6000 arenas should be summarised several to a row"

# Bad input.
expect_error "missing file" "cannot read $tmp/nothing.json" "$tmp/nothing.json" --out="$tmp/x.png"
: >"$tmp/empty.json"
expect_error "empty file" "is empty" "$tmp/empty.json" --out="$tmp/x.png"
head -c 2000 "$tmp/dump.json" >"$tmp/cut.json"
expect_error "truncated dump" "not valid JSON.*cut short" "$tmp/cut.json" --out="$tmp/x.png"
printf 'strata: statistics at exit (pid 1)\n# class size\n' >"$tmp/table.txt"
expect_error "table format" "table format" "$tmp/table.txt" --out="$tmp/x.png"
echo '{"hello": 1}' >"$tmp/other.json"
expect_error "other JSON" "not a strata statistics dump" "$tmp/other.json" --out="$tmp/x.png"
expect_error "bad extension" "should end in .png, .svg or .pdf" "$tmp/dump.json" --out="$tmp/x.txt"

# mutate NAME PYTHON: a copy of the real dump changed by PYTHON (on d).
mutate() {
  "$py" - "$tmp/dump.json" "$tmp/$1.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
owned = [a for a in d["arenas"] if a["pools"]]
runs = [(a, i) for a in owned for i, p in enumerate(a["pools"]) if isinstance(p, list)]
multi = [(a, i) for a, i in runs if a["pools"][i][4] > 1]
exec(sys.argv[3])
json.dump(d, open(sys.argv[2], "w"))
PY
}
mutate short 'owned[0]["pools"].pop()'
expect_error "61 pools" "61 pools listed, expected 62" "$tmp/short.json" --out="$tmp/x.png"
mutate state 'owned[0]["state"] = "lost"'
expect_error "unknown state" "unknown state 'lost'" "$tmp/state.json" --out="$tmp/x.png"
mutate overfull 'a, i = runs[0]; a["pools"][i][2] = a["pools"][i][3] + 1'
expect_error "used > capacity" "blocks used of a capacity of" "$tmp/overfull.json" --out="$tmp/x.png"
mutate class 'a, i = runs[0]; a["pools"][i][0] = 999'
expect_error "bad class" "size class 999 is not in 1..120" "$tmp/class.json" --out="$tmp/x.png"
if [ -n "$("$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(any(isinstance(p,list) and p[4]>1 for a in d["arenas"] for p in a["pools"]) or "")' "$tmp/dump.json")" ]; then
  mutate tail 'a, i = multi[0]; a["pools"][i + 1] = "f"'
  expect_error "broken multi-pool run" 'expected "t"' "$tmp/tail.json" --out="$tmp/x.png"
fi
mutate orphan_t 'a = owned[0]; a["pools"] = ["t"] + a["pools"][1:]'
expect_error "stray t" "follows no run head" "$tmp/orphan_t.json" --out="$tmp/x.png"
mutate entry 'owned[0]["pools"][0] = "x"'
expect_error "bad pool entry" 'expected "f", "p", "t" or \[class' "$tmp/entry.json" --out="$tmp/x.png"
mutate version 'd["version"] = 7'
expect_error "version" "dump version 7" "$tmp/version.json" --out="$tmp/x.png"
mutate noclasses 'del d["classes"]'
expect_error "no classes" "it has no classes" "$tmp/noclasses.json" --out="$tmp/x.png"
echo "PASS"
