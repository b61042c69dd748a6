#!/usr/bin/env bash
# An unlink that only a minority did, beside a stale brick (bug 20, found
# by failover.stale_survivor in CI).  Brick 2 missed the making of d/x and
# came back unhealed (bricks 1 and 3 blame it); then brick 3 died.  With
# bricks 1 and 2 up, `rm d/x` reached brick 1, which removed x, and brick 2,
# which refused with ENOENT because it never had x: done by one brick, so
# it failed.  The retried unlink then met ENOENT on both bricks and
# answered it: the application was told x was gone.  And heal, with brick
# 3 back, saw two sources (1 and 3) that differ, tied them, and let the
# lowest brick win: x, acknowledged, was removed from brick 3 too.
# Now a refusal counts only when a quorum of unblamed bricks gave it, and
# the bricks that refused a minority's change blame the ones that did it,
# so heal takes x back from brick 3.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
volume_start
mount_volume mA "ping-timeout=2"
mkdir "$T/mA/d"
sync
brick_kill 2
wait_for 10 brick_seen_down mA 2 || fail "mA did not see brick 2 go"
echo "acknowledged" >"$T/mA/d/x"
sync
brick_start 2
wait_for 20 brick_seen_up mA 2 2 || fail "mA did not see brick 2 again"
check "brick 2 lacks d/x" test ! -e "$(brick_path 2 d/x)"
check "brick 1 blames brick 2 for d" test "$(brick_pending_for "$(brick_path 1 d)" 2)" -gt 0
brick_kill 3
wait_for 10 brick_seen_down mA 3 || fail "mA did not see brick 3 go"

unlink_errno() {
    python3 - "$T/mA/d/x" <<'PY'
import errno, os, sys
try:
    os.unlink(sys.argv[1])
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
PY
}
first=$(unlink_errno)
log "unlink with bricks 1 and 2 up: $first"
check "the first unlink is not reported done" test "$first" != ok
second=$(unlink_errno)
log "unlink again: $second"
check "the retried unlink is not told ENOENT by a stale brick and a minority" \
    test "$second" = EIO

brick_start 3
wait_for 20 brick_seen_up mA 3 2 || fail "mA did not see brick 3 again"
"$RFS_BIN_DIR/replicafs" heal --wait --timeout 30 --verbose --volume "$VOL" \
    >"$T/heal.log" 2>&1 || fail "heal --wait: $(tail -n 6 "$T/heal.log")"
check "bricks equal" $HC same "$T" 3
check "no marker nonzero, no index entry left" $HC clean "$T" 3
for b in 1 2 3; do
    check "d/x back on brick $b" test "$(cat "$(brick_path $b d/x)" 2>&1)" = acknowledged
done
check "d/x through the mount" test "$(cat "$T/mA/d/x")" = acknowledged
log PASS
