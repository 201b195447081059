#!/usr/bin/env bash
# No class in alloc/ has more than 30 member functions, and none has its
# out-of-line members in more than one .cc (tools/check_class_shape.py, with
# ctags as a newcomer's tool would count). The check itself is tried first
# on a class too large and a class spread over two files, which must fail.
set -uo pipefail
check=$1; shift
dir=${TEST_TMPDIR:-$(mktemp -d)}/shape
rm -rf "$dir"; mkdir -p "$dir"
fail=0

{
  echo "class Big {"
  echo " public:"
  for i in $(seq 1 31); do echo "  void F$i();"; done
  echo "};"
} >"$dir/big.h"
printf 'void Big::F1() {}\n' >"$dir/one.cc"
printf 'void Big::F2() {}\n' >"$dir/two.cc"
if out=$(python3 "$check" "$dir/big.h" "$dir/one.cc" "$dir/two.cc" 2>&1); then
  echo "FAIL: a 31-member class spread over two files passed: $out"; fail=1
fi
for want in "Big: 31 member functions (at most 30)" "Big: out-of-line members in 2 files (one.cc, two.cc)"; do
  case "$out" in *"$want"*) ;; *) echo "FAIL: missing report: $want (got: $out)"; fail=1 ;; esac
done

if ! python3 "$check" "$@"; then fail=1; fi
if [ "$fail" -ne 0 ]; then exit 1; fi
echo "PASS"
