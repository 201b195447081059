#!/usr/bin/env bash
# libstrata.so links no C++ runtime (nor libm): a C program preloading it
# maps neither, and operator new's failure protocol uses the program's C++
# runtime, found at run time (alloc/new_failure.h); the static archive
# references it strongly, so that a static libstdc++ is pulled in. Compiles its programs
# from cxx_runtime/ with the system compilers, as a user's build would.
source "$(dirname "$0")/lib.sh"
SRC="$(cd "$(dirname "$0")/cxx_runtime" && pwd)"
ARCHIVE="$(cd "$(dirname "$0")/../../alloc" && pwd)/libstrata_static.a"

needed=$(readelf -d "$LIB" | grep NEEDED || true)
if echo "$needed" | grep -Eq "libstdc\+\+|libm\.so|libgcc_s"; then
  echo "FAIL: libstrata.so needs more than libc:"; echo "$needed"; exit 1
fi
echo "ok: libstrata.so needs only: $(echo "$needed" | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"

g++ -O2 -std=c++17 "$SRC/new_protocol.cc" -o "$TMP/new_protocol"
g++ -O2 -shared -fPIC "$SRC/plugin.cc" -o "$TMP/plugin.so"
# As Python wheels are built: the plugin carries its own C++ runtime.
g++ -O2 -shared -fPIC -static-libstdc++ -static-libgcc "$SRC/plugin.cc" -o "$TMP/plugin_static.so"
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

strata "$TMP/host" "$TMP/plugin_static.so" >"$TMP/hosts.out" 2>"$TMP/hosts.err" || { cat "$TMP/hosts.out" "$TMP/hosts.err"; exit 1; }
grep -q "host: ok" "$TMP/hosts.out"
echo "ok: so does a plugin with its own static C++ runtime, loaded RTLD_LOCAL"

# Linked in from the static archive, with the C++ runtime linked statically
# too (the archive's references to it are strong, so they pull it in).
for how in -static-libstdc++ -static; do
  g++ -O2 -std=c++17 $how "$SRC/new_protocol.cc" -o "$TMP/np_static" \
    -Wl,--whole-archive "$ARCHIVE" -Wl,--no-whole-archive -lpthread -ldl 2>"$TMP/link.err" ||
    { cat "$TMP/link.err"; exit 1; }
  "$TMP/np_static" >"$TMP/nps.out" 2>&1 || { echo "FAIL: linked with $how:"; cat "$TMP/nps.out"; exit 1; }
  grep -q "new_protocol: ok" "$TMP/nps.out"
done
echo "ok: the static archive with a static C++ runtime throws and calls the handler"

rc=0
strata "$TMP/no_runtime" >"$TMP/nr.out" 2>"$TMP/nr.err" || rc=$?
if [ "$rc" -ne 134 ] || ! grep -q "^strata: operator new: out of memory (.* bytes), and no C++ runtime is loaded to throw std::bad_alloc$" "$TMP/nr.err"; then
  echo "FAIL: operator new without a C++ runtime: exit $rc (expected 134, SIGABRT)"; cat "$TMP/nr.out" "$TMP/nr.err"; exit 1
fi
# (bash adds its own "Aborted" line for the child)
[ "$(grep -c "^strata:" "$TMP/nr.err")" -eq 1 ] || { echo "FAIL: not one line:"; cat "$TMP/nr.err"; exit 1; }
echo "ok: without a C++ runtime, a failed operator new prints one line and aborts"
echo PASS
