#!/usr/bin/env bash
# Launcher of //tools:compare: runs compare.py from the runfiles with Debian's
# /usr/bin/python3, which has matplotlib (the python3 first on PATH may not).
set -euo pipefail
if [[ -n "${RUNFILES_DIR:-}" && -f "$RUNFILES_DIR/strata/tools/bench/compare.py" ]]; then
  runfiles="$RUNFILES_DIR"
elif [[ -f "$0.runfiles/strata/tools/bench/compare.py" ]]; then
  runfiles="$0.runfiles"
elif [[ -n "${TEST_SRCDIR:-}" && -f "$TEST_SRCDIR/strata/tools/bench/compare.py" ]]; then
  runfiles="$TEST_SRCDIR"
else
  echo "compare: cannot find compare.py in the runfiles; run it with bazel run //tools:compare" >&2
  exit 2
fi
exec /usr/bin/python3 "$runfiles/strata/tools/bench/compare.py" "$@"
