# Checks shared by the viz tools' shell tests; sourced, not run. The caller
# sets $tmp (a scratch directory) and $py (the Python interpreter).

fail() { echo "FAIL: $*"; exit 1; }

# is_png FILE: true when FILE starts with the PNG signature.
is_png() { [ "$(head -c 8 "$1" | od -An -c | tr -d ' ')" = "211PNG\r\n032\n" ]; }

# png_within FILE MIN_W MAX_W MIN_H MAX_H MIN_BYTES MAX_BYTES: FILE is a PNG
# of a sensible size (pixels from its header, bytes on disk), or the test fails.
png_within() {
  local file="$1" w h bytes
  is_png "$file" || fail "$file is not a PNG"
  read -r w h < <("$py" -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print(*struct.unpack(">II", d[16:24]))' "$file")
  bytes=$(stat -c %s "$file")
  echo "$file: ${w}x${h}, $bytes bytes"
  [ "$w" -ge "$2" ] && [ "$w" -le "$3" ] || fail "$file: width $w out of $2..$3"
  [ "$h" -ge "$4" ] && [ "$h" -le "$5" ] || fail "$file: height $h out of $4..$5"
  [ "$bytes" -ge "$6" ] && [ "$bytes" -le "$7" ] || fail "$file: $bytes bytes out of $6..$7"
}

# tool_error TOOL WHAT PATTERN ARGS...: TOOL run with ARGS must exit 2 with
# PATTERN (a grep pattern) on stderr, and never with a Python traceback.
tool_error() {
  local tool="$1" what="$2" pattern="$3"
  shift 3
  local status=0
  "$tool" "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
  [ "$status" -eq 2 ] || { cat "$tmp/out" "$tmp/err"; fail "$what: exit status $status, expected 2"; }
  grep -q "Traceback" "$tmp/err" && { cat "$tmp/err"; fail "$what: a traceback instead of a message"; }
  grep -q -- "$pattern" "$tmp/err" || { cat "$tmp/err"; fail "$what: no '$pattern' in the message"; }
  echo "ok: $what: $(grep -m1 -- "$pattern" "$tmp/err")"
}
