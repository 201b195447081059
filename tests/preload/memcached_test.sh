#!/usr/bin/env bash
# memcached (4 worker threads) under strata on loopback: the memccapable
# protocol conformance suite, then a multithreaded SET/GET load whose every
# GET is checked against what was SET. -m 1024: the load's 40,000 keys of up
# to 20 KB (about 400 MB) must fit, or memcached may evict a key between its
# SET and GET, which the client would report as a lost value.
source "$(dirname "$0")/lib.sh"
CLIENT="$(dirname "$0")/memcached_client.py"

# A free loopback port.
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
STATS="$TMP/memcached.stats"
: >"$STATS"
LD_PRELOAD="$LIB" STRATA_STATS_ON_EXIT="$STATS" \
  memcached -u "$(id -un)" -l 127.0.0.1 -p "$PORT" -U 0 -t 4 -m 1024 -c 64 2>"$TMP/memcached.err" &
MC=$!
trap 'kill $MC 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
  sleep 0.1
done

timeout 300 memccapable -h 127.0.0.1 -p "$PORT" >"$TMP/capable.out" 2>&1 || {
  echo "FAIL: memccapable"; grep -v "\[pass\]" "$TMP/capable.out" | tail -20; exit 1; }
grep -q "All tests passed" "$TMP/capable.out"
echo "ok: memccapable: $(grep -c '\[pass\]' "$TMP/capable.out") protocol tests passed"

timeout 300 /usr/bin/python3 "$CLIENT" "$PORT" 8 20000 60
kill -TERM $MC
wait $MC || true
trap - EXIT
served "$STATS" 1000000
echo PASS
