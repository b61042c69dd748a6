#!/usr/bin/env bash
# replicafs keygen and status: output and exit codes as bricks go away
# (0 healthy, 1 degraded or read-only, 2 error or nothing reachable).
source "$(dirname "$0")/lib.sh"
CLI=$RFS_BIN_DIR/replicafs

key=$("$CLI" keygen)
[[ $key =~ ^[0-9a-f]{64}$ ]] || fail "keygen printed '$key', want 64 hex digits"
[ "$("$CLI" keygen)" != "$key" ] || fail "two keygen runs gave the same key"

volume_start

status() { # status WANT_EXIT [ARGS...]: run status, keep its output in $out
    local want=$1 rc=0
    shift
    out=$("$CLI" status --volume "$VOL" "$@") || rc=$?
    [ "$rc" = "$want" ] || fail "status $* exited $rc, want $want: $out"
}

status 0
grep -q "volume testvol: healthy" <<<"$out" || fail "no healthy line: $out"
[ "$(grep -c ' up ' <<<"$out")" = 3 ] || fail "want 3 bricks up: $out"
status 0 --json
python3 - "$out" <<'PY' || fail "bad --json: $out"
import json, sys
d = json.loads(sys.argv[1])
assert d["state"] == "healthy" and d["replica"] == 3, d
assert [b["brick"] for b in d["bricks"]] == [1, 2, 3], d
assert all(b["up"] and b["protocol"] == 3 and b["free_bytes"] > 0 and
           b["heal_entries"] == 0 for b in d["bricks"]), d
PY

log "one brick down: degraded"
brick_kill 3 KILL
status 1
grep -q "volume testvol: degraded" <<<"$out" || fail "not degraded: $out"
grep -qE '^3 .* down' <<<"$out" || fail "brick 3 not shown down: $out"

log "two bricks down: read-only"
brick_kill 2 KILL
status 1 --json
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["state"]=="read-only", d' "$out" ||
    fail "not read-only: $out"

log "all down: error"
brick_kill 1 KILL
status 2

log "a wrong key is an error, not a healthy volume"
brick_start 1
"$CLI" keygen >"$T/vol.key.new"
cp "$T/vol.key" "$T/vol.key.good"
mv "$T/vol.key.new" "$T/vol.key"
status 2
mv "$T/vol.key.good" "$T/vol.key"
status 1

log "usage errors"
rc=0; "$CLI" status >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "status without --volume exited $rc, want 2"
rc=0; "$CLI" status --volume "$T/missing.vol" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "status of a missing volume file exited $rc, want 2"
rc=0; "$CLI" frobnicate >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "unknown command exited $rc, want 2"
log "ok"
