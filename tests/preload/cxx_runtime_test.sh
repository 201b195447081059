#!/usr/bin/env bash
# libstrata.so links no C++ runtime (nor libm): a C program preloading it
# maps neither, and operator new's failure protocol uses the program's C++
# runtime, found at run time (alloc/new_failure.h). Compiles its programs
# from cxx_runtime/ with the system compilers, as a user's build would.
source "$(dirname "$0")/lib.sh"
SRC="$(cd "$(dirname "$0")/cxx_runtime" && pwd)"

needed=$(readelf -d "$LIB" | grep NEEDED || true)
if echo "$needed" | grep -Eq "libstdc\+\+|libm\.so|libgcc_s"; then
  echo "FAIL: libstrata.so needs more than libc:"; echo "$needed"; exit 1
fi
echo "ok: libstrata.so needs only: $(echo "$needed" | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"

g++ -O2 -std=c++17 "$SRC/new_protocol.cc" -o "$TMP/new_protocol"
g++ -O2 -shared -fPIC "$SRC/plugin.cc" -o "$TMP/plugin.so"
gcc -O2 "$SRC/host.c" -o "$TMP/host" -ldl
gcc -O2 "$SRC/no_runtime.c" -o "$TMP/no_runtime" -ldl

strata "$TMP/new_protocol" >"$TMP/np.out" 2>"$TMP/np.err" || { cat "$TMP/np.out" "$TMP/np.err"; exit 1; }
grep -q "new_protocol: ok" "$TMP/np.out"
served "$STATS"
echo "ok: a C++ program gets std::bad_alloc, its new-handler and null from nothrow new"

strata "$TMP/host" "$TMP/plugin.so" >"$TMP/host.out" 2>"$TMP/host.err" || { cat "$TMP/host.out" "$TMP/host.err"; exit 1; }
grep -q "host: ok" "$TMP/host.out"
served "$STATS"
echo "ok: a C program maps no libstdc++, and its late-loaded C++ plugin catches std::bad_alloc"

rc=0
strata "$TMP/no_runtime" >"$TMP/nr.out" 2>"$TMP/nr.err" || rc=$?
if [ "$rc" -ne 134 ] || ! grep -q "^strata: operator new: out of memory (.* bytes), and no C++ runtime is loaded to throw std::bad_alloc$" "$TMP/nr.err"; then
  echo "FAIL: operator new without a C++ runtime: exit $rc (expected 134, SIGABRT)"; cat "$TMP/nr.out" "$TMP/nr.err"; exit 1
fi
# (bash adds its own "Aborted" line for the child)
[ "$(grep -c "^strata:" "$TMP/nr.err")" -eq 1 ] || { echo "FAIL: not one line:"; cat "$TMP/nr.err"; exit 1; }
echo "ok: without a C++ runtime, a failed operator new prints one line and aborts"
echo PASS
