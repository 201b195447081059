#!/usr/bin/env bash
# Launcher of the Python tools here (//tools/viz:stats_viewer and
# //tools/viz:plot_timeline): runs <target name>.py from the runfiles with
# Debian's /usr/bin/python3, which has matplotlib (the python3 first on PATH
# may not). Under `bazel run`, relative paths in the arguments are the
# user's: it runs from the directory bazel was started in.
set -euo pipefail
tool="$(basename "$0")"
script="strata/tools/viz/$tool.py"
if [[ -n "${RUNFILES_DIR:-}" && -f "$RUNFILES_DIR/$script" ]]; then
  runfiles="$RUNFILES_DIR"
elif [[ -f "$0.runfiles/$script" ]]; then
  runfiles="$0.runfiles"
elif [[ -n "${TEST_SRCDIR:-}" && -f "$TEST_SRCDIR/$script" ]]; then
  runfiles="$TEST_SRCDIR"
else
  echo "$tool: cannot find $tool.py in the runfiles; run it with bazel run //tools/viz:$tool" >&2
  exit 2
fi
runfiles="$(cd "$runfiles" && pwd)"
if [[ ! -x /usr/bin/python3 ]] || ! /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  echo "$tool: needs Debian's /usr/bin/python3 with matplotlib (apt-get install" \
       "python3-matplotlib, or run tools/setup.sh)" >&2
  exit 2
fi
# matplotlib wants a writable config directory (not so in tests or for some users).
if [[ -z "${MPLCONFIGDIR:-}" && ! -w "${HOME:-/nonexistent}/.config" && ! -w "${HOME:-/nonexistent}" ]]; then
  export MPLCONFIGDIR="${TEST_TMPDIR:-${TMPDIR:-/tmp}}/strata-viz-matplotlib"
fi
if [[ -n "${BUILD_WORKING_DIRECTORY:-}" ]]; then
  cd "$BUILD_WORKING_DIRECTORY"
fi
exec /usr/bin/python3 "$runfiles/$script" "$@"
