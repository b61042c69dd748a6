#!/usr/bin/env bash
# A name looked up on a brick whose copy of the folder is dirty: the brick
# did a change of that folder that may never have been committed (a change
# done by a minority is reported failed and left dirty for heal), so its
# answer alone is no answer.  The soak found both ways this went wrong
# after two bricks were killed (docs/reliability.md, bug 17):
#  - d/gone: an unlink done by brick 1 only; a LOOKUP answered by brick 1
#    said ENOENT, the writer's retried unlink() took that as "deleted", and
#    heal then brought the file back from the majority (RESURRECTED);
#  - d/extra: an O_EXCL create done by brick 1 only; a LOOKUP answered by
#    brick 1 found it, the other creator got EEXIST, and heal then removed
#    it as the minority's (MISSING).  A listing from brick 1 must not plant
#    it in the kernel's cache either.
# Built by hand on stopped bricks (docs/brick-layout.md), read through a
# mount that prefers brick 1.  Expected: the majority's answer while a
# quorum is up, EIO (not a guess) when only the dirty brick is.
source "$(dirname "$0")/lib.sh"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir "$A/d"
echo "kept by the majority" >"$A/d/gone"
echo "clean neighbour" >"$A/d/other"
sync
unmount_volume "$A"
for i in 1 2 3; do brick_kill "$i"; done

log "brick 1: d/gone unlinked, d/extra created, d dirty (a minority's changes)"
python3 - "$T/brick1" <<'PY'
import os, struct, sys
root = sys.argv[1]
gone = os.path.join(root, "d/gone")
hi, lo = struct.unpack("<QQ", os.getxattr(gone, "trusted.rfs.id"))
gid = "%016x%016x" % (hi, lo)
os.unlink(os.path.join(root, ".replicafs/ids", gid[:2], gid))
os.unlink(gone)
PY
brick_add_extra 1 d/extra "only on brick 1"
brick_set_dirty 1 d
for i in 1 2 3; do brick_start "$i"; done

mount_volume mB "ping-timeout=2,prefer-brick=1"
B=$T/mB
for i in 1 2 3; do
    wait_for 30 brick_seen_up mB "$i" 1 || fail "mB did not connect to brick $i"
done

# A listing from brick 1 (ls -l: READDIRPLUS) names brick 1's d/extra; it
# must leave the kernel no entry for it, or the checks below would be
# answered from that entry without asking the mount.
ls -l "$B/d" >/dev/null 2>&1 || true  # extra: listed, then not found
check "the clean neighbour is read from brick 1" test "$(cat "$B/d/other")" = "clean neighbour"
check "d/gone: the majority's file, not brick 1's ENOENT" \
    test "$(cat "$B/d/gone" 2>&1)" = "kept by the majority"
check "d/extra: absent, as the majority says, not brick 1's file" \
    bash -c "! stat '$B/d/extra' 2>/dev/null"
rc=0
( set -o noclobber; echo "made by B" >"$B/d/extra" ) || rc=$?
check "an O_EXCL create of d/extra succeeds (rc $rc)" test "$rc" = 0
check "and reads back" test "$(cat "$B/d/extra")" = "made by B"

log "bricks 2 and 3 down: brick 1 alone cannot vouch for d"
brick_kill 2
brick_kill 3
for i in 2 3; do
    wait_for 30 count_ge 1 "$T/mB.log" "brick $i .* is down" || fail "mB did not see brick $i down"
done
out=$(stat "$B/d/gone" 2>&1 || true)
check "d/gone: EIO with only the dirty brick up, not its answer ($out)" \
    grep -q 'Input/output error' <<<"$out"
check "d/other (never changed) is still served" \
    test "$(cat "$B/d/other")" = "clean neighbour"

log "bricks 2 and 3 back, heal: every brick ends as the mount answered"
brick_start 2
brick_start 3
for i in 2 3; do
    wait_for 30 brick_seen_up mB "$i" 2 || fail "mB did not see brick $i again"
done
"$RFS_BIN_DIR/replicafs" heal --volume "$VOL" >"$T/heal.out" 2>&1 ||
    fail "heal: $(cat "$T/heal.out")"
check "one id per name on every brick" same_ids_on_bricks d/gone d/extra d/other
for i in 1 2 3; do
    check "brick $i: d/gone kept" test "$(cat "$(brick_path "$i" d/gone)")" = "kept by the majority"
    check "brick $i: d/extra is B's" test "$(cat "$(brick_path "$i" d/extra)")" = "made by B"
done
log "PASS"
