#!/usr/bin/env bash
# Side-by-side microbenchmarks: //tools/micro:malloc_benchmark under glibc and
# under each allocator preloaded with LD_PRELOAD (strata's libstrata.so,
# jemalloc, tcmalloc, mimalloc), plus //tools/micro:alloc_benchmark (strata
# called by name, no override). Prints one row per benchmark, one column per
# allocator, in CPU nanoseconds per malloc+free pair (1e9 / items_per_second;
# for the realloc rows, per malloc+realloc+free).
#
# Usage: tools/micro/compare_micro.sh [benchmark_filter_regex]
#   MIN_TIME=0.05   seconds per benchmark (Google Benchmark 1.7 syntax)
#   ALLOCATORS="glibc strata jemalloc tcmalloc mimalloc strata-api"
# Run it directly (it calls bazel itself), not through `bazel run`.
# An allocator whose library is missing is reported and left out.
set -euo pipefail
cd "$(dirname "$0")/../.."

filter=${1:-.}
min_time=${MIN_TIME:-0.05}
allocators=${ALLOCATORS:-"glibc strata jemalloc tcmalloc mimalloc strata-api"}
libdir=/usr/lib/x86_64-linux-gnu

command -v python3 >/dev/null || { echo "compare_micro.sh: python3 is needed for the table" >&2; exit 1; }

bazel build -c opt //tools/micro:malloc_benchmark //tools/micro:alloc_benchmark //alloc:libstrata.so
bin=$(bazel info -c opt bazel-bin 2>/dev/null)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

ran=()
for name in $allocators; do
  program=$bin/tools/micro/malloc_benchmark
  preload=
  case $name in
    glibc) ;;
    strata) preload=$bin/alloc/libstrata.so ;;
    jemalloc) preload=$libdir/libjemalloc.so.2 ;;
    tcmalloc) preload=$libdir/libtcmalloc_minimal.so.4 ;;
    mimalloc) preload=$libdir/libmimalloc.so.2 ;;
    strata-api) program=$bin/tools/micro/alloc_benchmark ;;
    *) echo "unknown allocator '$name'" >&2; exit 2 ;;
  esac
  if [ -n "$preload" ] && [ ! -e "$preload" ]; then
    echo "skipping $name: $preload not found" >&2
    continue
  fi
  echo "running $name${preload:+ (LD_PRELOAD=$preload)}" >&2
  if ! env ${preload:+LD_PRELOAD=$preload} "$program" --benchmark_min_time="$min_time" \
      --benchmark_filter="$filter" --benchmark_format=json >"$out/$name.json" 2>"$out/$name.err"; then
    echo "  $name failed:" >&2
    tail -5 "$out/$name.err" >&2
    continue
  fi
  ran+=("$name")
done

[ ${#ran[@]} -gt 0 ] || { echo "nothing ran" >&2; exit 1; }

python3 - "$out" "${ran[@]}" <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
table, order = {}, []
for name in names:
    with open(f"{out}/{name}.json") as f:
        for b in json.load(f)["benchmarks"]:
            row = b["name"]
            if row not in table:
                table[row] = {}
                order.append(row)
            ips = b.get("items_per_second")
            ns = f"{1e9 / ips:.1f}" if ips else "-"
            # Cross-thread runs where the threads barely overlapped.
            if b.get("local_frees", 0) > 0.05:
                ns += "*"
            table[row][name] = ns
width = max(len(r) for r in order) + 2
print("ns per pair (CPU time; lower is better)")
print("benchmark".ljust(width) + "".join(n.rjust(12) for n in names))
for row in order:
    print(row.ljust(width) + "".join(table[row].get(n, "-").rjust(12) for n in names))
if any("*" in cell for cells in table.values() for cell in cells.values()):
    print("* over 5% of the frees were local: the two threads barely overlapped")
PY
