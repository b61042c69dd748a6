#!/usr/bin/env bash
# A healer killed right after making an object on a sink leaves blame,
# never an empty copy that passes for good.  Brick 2's disk is replaced;
# `replicafs rebuild --brick 2` makes its first object there, folder d,
# and dies at once (RFS_HEAL_CRASH_AT=made-entry, as kill -9 would).  Bug:
# the sources' pending[2] for a new object was written after the create,
# so the dead rebuild left an empty d on brick 2 that nothing blamed (no
# client ever blamed brick 2 for it: it was written with every brick up);
# the next heal saw the same name and id on both sides and never made d/f
# there (a file made that way stayed empty).  Now the blame comes first.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
volume_start
mount_volume mA "ping-timeout=2"
mkdir "$T/mA/d"
head -c 100000 /dev/urandom >"$T/mA/d/f"
sync
sleep 1.5 # past the mount's post-op delay
log "brick 2 replaced; rebuild dies right after making d there"
brick_kill 2 KILL
rm -rf "$T/brick2"
brick_start 2 --init
wait_for 30 brick_seen_up mA 2 2 || fail "mA did not see brick 2 again"
rc=0
RFS_HEAL_CRASH_AT=made-entry "$RFS_BIN_DIR/replicafs" rebuild --brick 2 --jobs 1 \
    --volume "$VOL" >"$T/heal-a.log" 2>&1 || rc=$?
check "the rebuild died at the crash point (exit $rc)" test "$rc" = 137
check "it made d on brick 2" test -d "$(brick_path 2 d)"
check "brick 1 blames brick 2 for the d it made" \
    test "$(brick_pending_for "$(brick_path 1 d)" 2)" -gt 0
"$RFS_BIN_DIR/replicafs" heal --wait --timeout 20 --volume "$VOL" \
    >"$T/heal-b.log" 2>&1 || fail "heal --wait: $(tail -n 5 "$T/heal-b.log")"
check "d/f is equal on every brick" cmp -s "$(brick_path 1 d/f)" "$(brick_path 2 d/f)"
check "no marker nonzero, no index entry left" $HC clean "$T" "$NBRICKS"
log PASS
