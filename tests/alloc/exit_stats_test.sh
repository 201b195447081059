#!/usr/bin/env bash
# End to end through the environment: STRATA_* knobs are read at start-up,
# a bad value is named and refused, and STRATA_STATS_ON_EXIT writes the
# statistics at exit in each format, with every option's value and origin.
set -euo pipefail
DEMO="$(cd "$(dirname "$0")/../../tools" && pwd)/demo"
PY=/usr/bin/python3
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*"; exit 1; }

# Table to a file, knobs from the environment.
STRATA_STATS_ON_EXIT="$TMP/table.txt" STRATA_PURGE_DELAY_MS=250ms STRATA_ARENAS_RETAINED=3 \
  "$DEMO" --records=20000 >/dev/null
grep -q "strata: statistics at exit" "$TMP/table.txt" || fail "no table header"
grep -q "^# retention: why each mapped byte is held" "$TMP/table.txt" || fail "no retention report"
grep -Eq "^#   purge_delay_ms += 250 +\(env\)" "$TMP/table.txt" || fail "purge_delay_ms not from env"
grep -Eq "^#   arenas_retained += 3 +\(env\)" "$TMP/table.txt" || fail "arenas_retained not from env"
grep -Eq "^#   thread_cache_bytes += 4194304 +\(default\)" "$TMP/table.txt" || fail "default not shown"
echo "ok: table with options and their origins"

# A refused value: one line naming knob, value, origin and range; the run goes on.
STRATA_THREAD_CACHE_BYTES=lots "$DEMO" --records=1000 >/dev/null 2>"$TMP/err.txt"
grep -q "strata: option thread_cache_bytes: value 'lots' from STRATA_THREAD_CACHE_BYTES refused: expected a byte count in \[0, 1073741824\] (suffixes k, m, g); keeping '4194304'" \
  "$TMP/err.txt" || { cat "$TMP/err.txt"; fail "bad env value not reported as expected"; }
[ "$(grep -c . "$TMP/err.txt")" -eq 1 ] || { cat "$TMP/err.txt"; fail "expected exactly one line"; }
echo "ok: a bad environment value is named and refused"

# JSON (plain and with the arena map), checked by a JSON parser.
STRATA_STATS_ON_EXIT="$TMP/s.json" STRATA_STATS_FORMAT=json "$DEMO" --records=5000 >/dev/null
STRATA_STATS_ON_EXIT="$TMP/a.json" STRATA_STATS_FORMAT=json-arenas "$DEMO" --records=5000 >/dev/null
"$PY" - "$TMP/s.json" "$TMP/a.json" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
for key in ("live_bytes", "classes", "retention", "options", "cross_thread", "release", "os"):
    assert key in s, key
assert s["options"]["stats_format"] == {"value": "json", "source": "env"}, s["options"]["stats_format"]
assert s["options"]["purge_delay_ms"]["source"] == "default"
r = s["retention"]
parts = sum(v for k, v in r.items() if isinstance(v, int) and k not in ("total", "next_purge_ms", "all_purged_ms"))
parts += sum(r["free_pinned"].values())
assert parts == r["total"], (parts, r["total"])
a = json.load(open(sys.argv[2]))
assert a["arenas"], "no arenas in the map"
pools = a["arenas"][0]["pools"]
assert len(pools) == 62, len(pools)
print("ok: JSON parses; retention parts add up to", r["total"])
PYEOF

# Prometheus text exposition: every sample line is `name{labels} value`.
STRATA_STATS_ON_EXIT="$TMP/p.txt" STRATA_STATS_FORMAT=prometheus "$DEMO" --records=5000 >/dev/null
grep -q "^strata_live_bytes [0-9]" "$TMP/p.txt" || fail "no strata_live_bytes"
grep -q '^strata_retained_bytes{reason="in_use"} [0-9]' "$TMP/p.txt" || fail "no retention"
grep -q '^strata_option{name="stats_format",source="env"} 3$' "$TMP/p.txt" || fail "no option"
if grep -v '^#' "$TMP/p.txt" | grep -Evq '^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9]+$'; then
  grep -v '^#' "$TMP/p.txt" | grep -Ev '^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9]+$' | head
  fail "malformed Prometheus lines"
fi
echo "ok: Prometheus exposition well formed"

# STRATA_STATS_ON_EXIT=1: the table on stderr.
STRATA_STATS_ON_EXIT=1 "$DEMO" --records=1000 >/dev/null 2>"$TMP/stderr.txt"
grep -q "strata: statistics at exit" "$TMP/stderr.txt" || fail "STRATA_STATS_ON_EXIT=1 printed nothing"
echo "ok: STRATA_STATS_ON_EXIT=1 prints the table"
