#!/usr/bin/env bash
# A volume in the middle of an upgrade (docs/admin.md, "Upgrading"): brick 2
# speaks only protocol 1 (--protocol-max 1), so the mount must open files
# the old way (OPEN and XATTROP, not OPENX) on every brick.  Everything a
# portal does must work, the status must say which brick speaks what, and
# a brick that is upgraded and restarted must be used with protocol 2.
source "$(dirname "$0")/lib.sh"

volume_create
brick_start 1 --init
MP=$(free_port)
brick_start 2 --init --protocol-max 1 --metrics "127.0.0.1:$MP"
brick_start 3 --init
mount_volume mA
mount_volume mB
A=$T/mA B=$T/mB

protocols() {
    "$RFS_BIN_DIR/replicafs" status --volume "$VOL" --json |
        python3 -c 'import json,sys; print(" ".join(str(b["protocol"]) for b in json.load(sys.stdin)["bricks"]))'
}
[ "$(protocols)" = "3 1 3" ] || fail "status says protocols '$(protocols)', want '3 1 3'"

log "write on A, read on B, rewrite, unlink while open"
python3 - "$A" "$B" <<'PY' || fail "file operations with a protocol 1 brick"
import os, sys
a, b = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(a, "up/3f/a1"))
for i in range(50):
    with open(os.path.join(a, f"up/3f/a1/f{i}"), "wb") as f:
        f.write(bytes([i]) * (1000 + i))
for i in range(50):
    with open(os.path.join(b, f"up/3f/a1/f{i}"), "rb") as f:
        assert f.read() == bytes([i]) * (1000 + i), f"f{i} on B"
with open(os.path.join(a, "up/3f/a1/f7"), "wb") as f:
    f.write(b"new")
with open(os.path.join(b, "up/3f/a1/f7"), "rb") as f:
    assert f.read() == b"new", "B read the old f7 after A's close"
fd = os.open(os.path.join(b, "up/3f/a1/f8"), os.O_RDONLY)
os.unlink(os.path.join(a, "up/3f/a1/f8"))
assert os.pread(fd, 4096, 0) == bytes([8]) * 1008, "unlinked open file"
os.close(fd)
PY
# Opens reached brick 2 the protocol 1 way (an OPENX it would refuse with
# ENOSYS, and the open would quietly leave brick 2 out).
opens=$(python3 - "$MP" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode()
m = re.search(r'^replicafs_ops_total\{op="open"\} (\d+)$', text, re.M | re.I)
print(m.group(1) if m else 0)
PY
)
[ "$opens" -ge 50 ] || fail "brick 2 (protocol 1) served $opens OPENs, want at least 50"
check "the three bricks agree" bash -c \
    "cmp '$T/brick1/up/3f/a1/f7' '$T/brick2/up/3f/a1/f7' && cmp '$T/brick2/up/3f/a1/f7' '$T/brick3/up/3f/a1/f7'"

log "brick 2 upgraded: restarted without --protocol-max"
brick_kill 2 TERM
brick_start 2
wait_for 30 brick_seen_up mA 2 2 || fail "mA did not see brick 2 again"
wait_for 30 brick_seen_up mB 2 2 || fail "mB did not see brick 2 again"
"$RFS_BIN_DIR/replicafs" heal --volume "$VOL" --wait >/dev/null || fail "heal"
[ "$(protocols)" = "3 3 3" ] || fail "status says protocols '$(protocols)' after the upgrade"
[ "$(cat "$B/up/3f/a1/f7")" = new ] || fail "f7 after the upgrade"
log PASS
