#!/usr/bin/env bash
# Checks strata's Promela models of its lock-free protocols with SPIN, each
# exhaustively (tests/model/*.pml; ARCHITECTURE.md, "Model checks"):
#  - every model must verify: "errors: 0", a complete search (no depth
#    limit hit, no memory limit hit);
#  - every seeded-bug variant a model lists in its header comment (a line
#    " *   -DBUG_NAME ...") must be rejected: errors > 0 (an assertion
#    violated).
# Prints one line per model and variant (PASS/FAIL, why, states, seconds) and
# exits 0 only when every model verifies and every variant is rejected.
# Needs spin (Debian's `spin`, tools/setup.sh) and a C compiler on PATH;
# without them it fails, it never skips.
# Usage: check.sh [MODEL.pml ...]   (default: every *.pml beside this script)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -gt 0 ]; then
  models=("$@")
else
  models=("$here"/*.pml)
fi

spin=$(command -v spin || true)
cc=$(command -v gcc || command -v cc || true)
if [ -z "$spin" ]; then
  echo "FAIL: spin not found on PATH (Debian package 'spin'; run tools/setup.sh)"
  exit 1
fi
if [ -z "$cc" ]; then
  echo "FAIL: no C compiler (gcc or cc) on PATH to build SPIN's verifier"
  exit 1
fi
if [ ! -e "${models[0]}" ]; then
  echo "FAIL: no models found (${models[*]})"
  exit 1
fi

work=$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/spin-models.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# The verifier: safety only (assertions and invalid end states), at most
# 1 GiB of state space, a 2^22-slot hash table, depth limit 100000 (the
# models reach a few hundred; hitting it fails the check). -O0: pan.c takes
# 8 s to compile at -O2 and the searches run about as fast either way.
PAN_CFLAGS=(-O0 -DSAFETY -DMEMLIM=1024 -w)
PAN_RUN=(-m100000 -w22)

# Wall-clock seconds (no bc: awk is everywhere).
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

failures=0
total_start=$(now)

# verify MODEL [-DBUG_X]: runs spin + pan in $work/<name>; sets out, secs.
verify() {
  local model=$1 define=${2:-}
  local dir="$work/$(basename "$model" .pml)${define:+.${define#-D}}"
  mkdir -p "$dir"
  cp "$model" "$dir/model.pml"
  local start
  start=$(now)
  out=$(cd "$dir" &&
        "$spin" ${define:+"$define"} -a model.pml 2>&1 &&
        "$cc" "${PAN_CFLAGS[@]}" -o pan pan.c 2>&1 &&
        ./pan "${PAN_RUN[@]}" 2>&1)
  rc=$?
  secs=$(since "$start")
}

field() {  # the verifier's count of states, and its error count
  states=$(echo "$out" | sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' | head -n1)
  errors=$(echo "$out" | sed -n 's/.*errors: \([0-9]*\).*/\1/p' | head -n1)
}

for model in "${models[@]}"; do
  name=$(basename "$model")
  verify "$model"
  field
  why=""
  if [ -z "$errors" ]; then
    why="no verifier result (rc $rc): $(echo "$out" | grep -m1 -iE 'error|fatal' || echo "$out" | tail -n1)"
  elif [ "$errors" != 0 ]; then
    why="$errors error(s): $(echo "$out" | grep -m1 -E 'assertion violated|invalid end state|pan:' )"
  elif echo "$out" | grep -qE 'depth too small|Search not completed|MEMLIM|out of memory'; then
    why="search incomplete: $(echo "$out" | grep -m1 -E 'depth too small|Search not completed|MEMLIM|out of memory')"
  fi
  if [ -n "$why" ]; then
    printf 'FAIL %-48s %s\n' "$name" "$why"
    failures=$((failures + 1))
  else
    printf 'PASS %-48s verified: %s states, errors 0, %ss\n' "$name" "$states" "$secs"
  fi

  # The seeded bugs this model lists in its header.
  variants=$(sed -n '1,/\*\//p' "$model" | grep -oE '^ \*   -DBUG_[A-Z0-9_]+' | sed 's/^ \*   //' | sort -u)
  if [ -z "$variants" ]; then
    printf 'FAIL %-48s lists no seeded-bug variant\n' "$name"
    failures=$((failures + 1))
  fi
  for v in $variants; do
    label="$name $v"
    if ! grep -qE "^#if(n?def|) .*${v#-D}\b|defined\(${v#-D}\)" "$model"; then
      printf 'FAIL %-48s the model never tests %s\n' "$label" "${v#-D}"
      failures=$((failures + 1))
      continue
    fi
    verify "$model" "$v"
    field
    if [ -n "$errors" ] && [ "$errors" != 0 ] && echo "$out" | grep -qE 'assertion violated|invalid end state'; then
      printf 'PASS %-48s rejected: %s (%s states, %ss)\n' "$label" \
        "$(echo "$out" | grep -m1 -oE '(assertion violated|invalid end state).*')" "$states" "$secs"
    else
      printf 'FAIL %-48s not rejected (errors: %s, rc %s)\n' "$label" "${errors:-none}" "$rc"
      failures=$((failures + 1))
    fi
  done
done

total=$(since "$total_start")
if [ "$failures" -ne 0 ]; then
  printf 'FAIL: %d check(s) failed (%ss)\n' "$failures" "$total"
  exit 1
fi
printf 'OK: every model verified, every seeded bug rejected (%ss)\n' "$total"
