#!/usr/bin/env bash
# record_timeline: runs a command with strata preloaded and its sampler on,
# then plots the process's memory over time (plot_timeline).
#
#   bazel run -c opt //tools/viz:record_timeline -- [--out=TIMELINE.png]
#       [--interval_ms=20] [--samples=FILE.jsonl] [--title=TEXT] [--label=TEXT]
#       -- COMMAND [ARGS...]
#
# Defaults: --out=timeline.png and the samples in a temporary file, kept and
# named at the end. The command runs from the directory bazel was started in,
# with LD_PRELOAD=libstrata.so, STRATA_SAMPLE_INTERVAL_MS and
# STRATA_SAMPLE_FILE set (its own STRATA_* settings pass through). Children
# inherit the preload and append to the same file: sample one process. For
# Python, set PYTHONMALLOC=malloc so objects go through strata:
#   ... -- env PYTHONMALLOC=malloc python3 tools/release/records.py
# Exit status: the command's (the picture is still drawn when it fails), or
# 2 when there is nothing to draw.
set -uo pipefail

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

out="timeline.png"
interval_ms=20
samples=""
title=""
label=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out=*) out="${1#--out=}" ;;
    --interval_ms=*) interval_ms="${1#--interval_ms=}" ;;
    --samples=*) samples="${1#--samples=}" ;;
    --title=*) title="${1#--title=}" ;;
    --label=*) label="${1#--label=}" ;;
    -h|--help) usage ;;
    --) shift; break ;;
    *) echo "record_timeline: unknown argument '$1' (the command goes after --)" >&2; usage ;;
  esac
  shift
done
if [[ $# -eq 0 ]]; then
  echo "record_timeline: no command given (it goes after --)" >&2
  usage
fi
if ! [[ "$interval_ms" =~ ^[0-9]+$ ]] || [[ "$interval_ms" -eq 0 ]]; then
  echo "record_timeline: --interval_ms wants a whole number of milliseconds > 0," \
       "not '$interval_ms'" >&2
  exit 2
fi

# The runfiles: libstrata.so and plot_timeline.py.
here="strata/tools/viz"
if [[ -n "${RUNFILES_DIR:-}" && -f "$RUNFILES_DIR/$here/plot_timeline.py" ]]; then
  runfiles="$RUNFILES_DIR"
elif [[ -f "$0.runfiles/$here/plot_timeline.py" ]]; then
  runfiles="$0.runfiles"
elif [[ -n "${TEST_SRCDIR:-}" && -f "$TEST_SRCDIR/$here/plot_timeline.py" ]]; then
  runfiles="$TEST_SRCDIR"
else
  echo "record_timeline: cannot find its runfiles; run it with" \
       "bazel run -c opt //tools/viz:record_timeline" >&2
  exit 2
fi
runfiles="$(cd "$runfiles" && pwd)"
lib="$runfiles/strata/alloc/libstrata.so"
if [[ ! -f "$lib" ]]; then
  echo "record_timeline: $lib is missing" >&2
  exit 2
fi
if ! /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  echo "record_timeline: needs Debian's /usr/bin/python3 with matplotlib (apt-get install" \
       "python3-matplotlib, or run tools/setup.sh)" >&2
  exit 2
fi
# matplotlib wants a writable config directory (not so in tests or for some users).
if [[ -z "${MPLCONFIGDIR:-}" && ! -w "${HOME:-/nonexistent}/.config" && ! -w "${HOME:-/nonexistent}" ]]; then
  export MPLCONFIGDIR="${TEST_TMPDIR:-${TMPDIR:-/tmp}}/strata-viz-matplotlib"
fi
if [[ -n "${BUILD_WORKING_DIRECTORY:-}" ]]; then
  cd "$BUILD_WORKING_DIRECTORY" || exit 2
fi

# The sampler appends to an absolute path: start from an empty file.
temporary=0
if [[ -z "$samples" ]]; then
  temporary=1
  samples="$(mktemp "${TMPDIR:-/tmp}/strata_samples.XXXXXX")" || exit 2
  mv "$samples" "$samples.jsonl" && samples="$samples.jsonl"
fi
[[ "$samples" = /* ]] || samples="$PWD/$samples"
: >"$samples" || { echo "record_timeline: cannot write $samples" >&2; exit 2; }

echo "record_timeline: running $* (strata preloaded, a sample every $interval_ms ms)" >&2
LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" \
  STRATA_SAMPLE_INTERVAL_MS="$interval_ms" STRATA_SAMPLE_FILE="$samples" "$@"
status=$?
if [[ $status -ne 0 ]]; then
  echo "record_timeline: the command exited with status $status; plotting what was sampled" >&2
fi

[[ -n "$label" ]] || label="$(basename "$1")${2:+ ${*:2}}"
[[ ${#label} -le 90 ]] || label="${label:0:87}..."
[[ -n "$title" ]] || title="Memory over time under strata"
if ! /usr/bin/python3 "$runfiles/$here/plot_timeline.py" "$samples" --out="$out" \
    --title="$title" --label="$label"; then
  [[ $temporary -eq 1 && ! -s "$samples" ]] && rm -f "$samples"
  exit 2
fi
echo "record_timeline: samples in $samples"
exit $status
