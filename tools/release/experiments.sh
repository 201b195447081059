#!/usr/bin/env bash
# Runs the memory-return experiments and prints a Markdown table:
#   python3 records (PYTHONMALLOC=malloc under strata and glibc; default pymalloc)
#   cross_free      (4 threads, 1 GiB, freed crosswise; strata, glibc and peers)
# Each row: RSS before, at the peak, right after the frees, after idling.
#   bazel run -c opt //tools/release:experiments [-- --idle_ms=3000 --total_mib=1024]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
R="${RUNFILES_DIR:-$0.runfiles}/strata"
[ -d "$R" ] || R="$(cd "$here/../.." && pwd)"
LIB="$R/alloc/libstrata.so"
CROSS="$R/tools/release/cross_free"
RECORDS="$R/tools/release/records.py"
PY=/usr/bin/python3
idle_ms=3000
total_mib=1024
for arg in "$@"; do
  case "$arg" in
    --idle_ms=*) idle_ms=${arg#*=} ;;
    --total_mib=*) total_mib=${arg#*=} ;;
    *) echo "usage: experiments [--idle_ms=N] [--total_mib=N]"; exit 2 ;;
  esac
done
libdir=/usr/lib/x86_64-linux-gnu

row() {  # name, then the program's output line
  local name=$1 line=$2
  local b p f i
  b=$(sed -n 's/.*rss_before=\([0-9.]*\).*/\1/p' <<<"$line")
  p=$(sed -n 's/.*rss_peak=\([0-9.]*\).*/\1/p' <<<"$line")
  f=$(sed -n 's/.*rss_after_free=\([0-9.]*\).*/\1/p' <<<"$line")
  i=$(sed -n 's/.*rss_after_idle=\([0-9.]*\).*/\1/p' <<<"$line")
  local verdict
  verdict=$(awk -v b="$b" -v i="$i" 'BEGIN { print (i <= b * 1.10 || i - b <= 5) ? "yes" : "no" }')
  printf '| %-28s | %8s | %8s | %8s | %8s | %-9s |\n' "$name" "$b" "$p" "$f" "$i" "$verdict"
}

echo "## python3: 100,000 records created, then deleted (idle ${idle_ms} ms)"
echo
echo "| allocator                    | before   | peak     | freed    | idle     | back (*)  |"
echo "|------------------------------|---------:|---------:|---------:|---------:|-----------|"
row "strata (PYTHONMALLOC=malloc)" "$(PYTHONMALLOC=malloc LD_PRELOAD="$LIB" "$PY" "$RECORDS" --idle_ms="$idle_ms")"
row "glibc (PYTHONMALLOC=malloc)" "$(PYTHONMALLOC=malloc "$PY" "$RECORDS" --idle_ms="$idle_ms")"
row "pymalloc (default)" "$("$PY" "$RECORDS" --idle_ms="$idle_ms")"
echo
echo "## C++: 4 threads allocate ${total_mib} MiB in 16..512 B blocks, free them crosswise (idle ${idle_ms} ms)"
echo
echo "| allocator                    | before   | peak     | freed    | idle     | back (*)  |"
echo "|------------------------------|---------:|---------:|---------:|---------:|-----------|"
row "strata" "$(LD_PRELOAD="$LIB" "$CROSS" --total_mib="$total_mib" --idle_ms="$idle_ms")"
row "glibc" "$("$CROSS" --total_mib="$total_mib" --idle_ms="$idle_ms")"
for peer in jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4 mimalloc:libmimalloc.so.2; do
  name=${peer%%:*}; so=$libdir/${peer#*:}
  if [ -f "$so" ]; then
    row "$name" "$(LD_PRELOAD="$so" "$CROSS" --total_mib="$total_mib" --idle_ms="$idle_ms")"
  else
    echo "| $name: not installed ($so) | | | | | |"
  fi
done
echo
echo "RSS in MiB. (*) back: RSS after idling within 10% (or 5 MiB) of RSS before."
