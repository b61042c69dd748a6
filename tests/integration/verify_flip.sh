#!/usr/bin/env bash
# replicafs verify: replicas written through a mount compare equal (exit 0);
# a byte flipped behind the daemons' backs in one brick's copy (mtime kept
# with touch -r) is found by --deep and that brick is named (exit 1); a size
# difference, a missing copy and a mode difference are found without --deep;
# PATH limits the walk; a path on no brick is an error (exit 2).
source "$(dirname "$0")/lib.sh"
CLI=$RFS_BIN_DIR/replicafs

volume_start
mount_volume mA
A=$T/mA

verify() { # verify WANT_EXIT [ARGS...]: keep the output in $out
    local want=$1 rc=0
    shift
    out=$("$CLI" verify --volume "$VOL" "$@" 2>&1) || rc=$?
    [ "$rc" = "$want" ] || fail "verify $* exited $rc, want $want: $out"
}

log "a small tree through the mount"
mkdir -p "$A/d/sub"
printf 'hello\n' >"$A/small.txt"
head -c 3145728 /dev/urandom >"$A/big.bin"
head -c 204800 /dev/urandom >"$A/d/sub/x.bin"
: >"$A/d/empty"
ln -s small.txt "$A/link"
sync
for f in small.txt big.bin d/sub/x.bin; do
    wait_for 10 same_on_bricks "$f" || fail "$f differs between bricks"
done

verify 0
grep -q "0 mismatch" <<<"$out" || fail "want no mismatch: $out"
verify 0 --deep
verify 0 --json
python3 - "$out" <<'PY' || fail "bad --json: $out"
import json, sys
d = json.loads(sys.argv[1])
assert d["mismatches"] == [] and d["checked"] >= 7 and d["bricks_up"] == 3, d
PY

log "flip one byte of brick 2's big.bin, keep its mtime"
f2=$(brick_path 2 big.bin)
touch -r "$f2" "$T/mtime.ref"
python3 - "$f2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1048576 + 5)
    b = f.read(1)
    f.seek(1048576 + 5)
    f.write(bytes([b[0] ^ 0x01]))
PY
touch -r "$T/mtime.ref" "$f2"
[ "$(stat -c %Y "$f2")" = "$(stat -c %Y "$T/mtime.ref")" ] || fail "mtime moved"
verify 1 --deep
grep -qE '^MISMATCH /big.bin: data: brick 2: 1 block' <<<"$out" ||
    fail "deep verify did not name brick 2 for big.bin: $out"
[ "$(grep -c '^MISMATCH' <<<"$out")" = 1 ] || fail "want exactly 1 mismatch: $out"
verify 1 --deep --json
python3 - "$out" <<'PY' || fail "bad --json: $out"
import json, sys
d = json.loads(sys.argv[1])
m = d["mismatches"]
assert len(m) == 1 and m[0]["path"] == "/big.bin" and m[0]["what"] == "data" \
    and m[0]["bricks"] == [2] and "offset 1048576" in m[0]["detail"], d
PY
# Without --deep the stored sums of brick 2 are void too: the edit moved the
# file's ctime, which touch -r cannot restore (brick-layout.md, "sums/").
verify 1
grep -q '^MISMATCH /big.bin: data: brick 2' <<<"$out" ||
    fail "plain verify missed the flipped byte: $out"
log "put the byte back: equal again"
python3 - "$f2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1048576 + 5)
    b = f.read(1)
    f.seek(1048576 + 5)
    f.write(bytes([b[0] ^ 0x01]))
PY
verify 0 --deep

log "size, presence and mode differences without --deep"
truncate -s 204799 "$(brick_path 3 d/sub/x.bin)"
verify 1
grep -qE '^MISMATCH /d/sub/x.bin: size: brick 3: ' <<<"$out" ||
    fail "size mismatch not found on brick 3: $out"
[ "$(grep -c '^MISMATCH' <<<"$out")" = 1 ] || fail "want exactly 1 mismatch: $out"
verify 1 /d
grep -q '/d/sub/x.bin: size: brick 3' <<<"$out" || fail "verify /d: $out"
verify 0 /big.bin
verify 0 /link
rm "$(brick_path 1 small.txt)"
chmod 0600 "$(brick_path 2 d/empty)"
verify 1
grep -qE '^MISMATCH /small.txt: presence .*: brick 1: ' <<<"$out" ||
    fail "missing copy on brick 1 not found: $out"
grep -qE '^MISMATCH /d/empty: mode: brick 2: ' <<<"$out" ||
    fail "mode difference on brick 2 not found: $out"

log "errors"
verify 2 /no/such/path
rc=0; "$CLI" verify >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "verify without --volume exited $rc, want 2"
log "ok"
