#!/usr/bin/env bash
# The static archive, linked whole into a program built outside Bazel, makes
# strata that program's malloc, new and delete.
set -euo pipefail
ARCHIVE="$(cd "$(dirname "$0")/../../alloc" && pwd)/libstrata_static.a"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
cat >"$TMP/app.cc" <<'CC'
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
extern "C" int strata_owns(const void*);
int main() {
  void* p = std::malloc(100);
  std::vector<std::string> v(1000, std::string(100, 'x'));
  int* n = new int[50];
  const bool ok = strata_owns(p) && strata_owns(v.data()) && strata_owns(v[999].data()) && strata_owns(n);
  delete[] n;
  std::free(p);
  std::printf("%s\n", ok ? "served by strata" : "NOT served by strata");
  return ok ? 0 : 1;
}
CC
g++ -O2 -std=c++17 "$TMP/app.cc" -o "$TMP/app" \
  -Wl,--whole-archive "$ARCHIVE" -Wl,--no-whole-archive -lpthread -ldl
"$TMP/app"
