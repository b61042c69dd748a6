#!/usr/bin/env bash
# A dirty folder whose only sink is a brick that lacks it altogether.  Found
# by the soak (two_down, bricks 1 then 2 killed): folder d was made while
# brick 1 was down (bricks 2 and 3 blame it), then a create in d reached
# brick 3 only (brick 2 died under it) and failed, leaving d dirty on both.
# Heal saw no sink among the bricks that have d (brick 1 has no copy to
# blame), so it put d to a vote of the whole volume: brick 2 against brick
# 3, no majority, and it made d a split-brain (EIO through the mounts).
# But brick 1 is known stale, and bricks 2 and 3 differ only by a change
# nobody was told succeeded: either will do, as for dirty sources with a
# sink present (heal_dirty_sources).  Heal must leave d equal everywhere.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
volume_start
brick_kill 1
mount_volume mA "ping-timeout=2"
mkdir "$T/mA/d"
echo "kept" >"$T/mA/d/a"
sync
unmount_volume "$T/mA"
brick_start 1
check "d is not on brick 1" test ! -e "$(brick_path 1 d)"
check "brick 2 blames brick 1 for d" test "$(brick_pending_for "$(brick_path 2 d)" 1)" -gt 0
brick_add_extra 3 d/x "a create only brick 3 did"
brick_set_dirty 2 d
brick_set_dirty 3 d

# root_blame BRICK N: the root's pending counter for brick 1 set to N (and
# its heal index entry made or removed to match).
root_blame() {
    python3 - "$T/brick$1" "$2" <<'PY'
import os, struct, sys
root, n = sys.argv[1], int(sys.argv[2])
hi, lo = struct.unpack("<QQ", os.getxattr(root, "trusted.rfs.id"))
idx = os.path.join(root, ".replicafs/heal", "%016x%016x" % (hi, lo))
os.setxattr(root, "trusted.rfs.pending", struct.pack("<3q", n, 0, 0))
if n:
    open(idx, "w").close()
elif os.path.exists(idx):
    os.unlink(idx)
PY
}
# The soak's order, made certain: d healed while its folder's entry heal,
# which makes d on brick 1, has not run (here: has nothing to run for).
root_blame 2 0
root_blame 3 0
"$RFS_BIN_DIR/replicafs" heal --wait --timeout 3 --verbose --volume "$VOL" \
    >"$T/heal1.log" 2>&1 || true
log "heal of d alone: $(grep -v 'healed bricks' "$T/heal1.log" | head -n 2 | tr '\n' ' ')"
check "d is no split-brain" bash -c "! grep -q 'no majority' '$T/heal1.log'"
check "brick 3 does not blame brick 2 for d" \
    test "$(brick_pending_for "$(brick_path 3 d)" 2)" = 0
check "d/x, which no quorum made, is gone from brick 3" \
    test ! -e "$(brick_path 3 d/x)"

log "the folder's blame back: heal makes d on brick 1"
root_blame 2 1
root_blame 3 1
"$RFS_BIN_DIR/replicafs" heal --wait --timeout 20 --verbose --volume "$VOL" \
    >"$T/heal.log" 2>&1 || fail "heal --wait: $(tail -n 6 "$T/heal.log")"
check "bricks equal" $HC same "$T" 3
check "no marker nonzero, no index entry left" $HC clean "$T" 3
check "d/a on brick 1" test "$(cat "$(brick_path 1 d/a)")" = kept
log PASS
