#!/usr/bin/env bash
# A stale brick's refusal is not the volume's answer.  Brick 3 misses the
# creation of r/a, comes back unhealed, then brick 1 goes: `rm r/a` can be
# done by brick 2 alone, which is not a quorum, so it must fail with EROFS
# (cannot be made durable now), never with ENOENT (brick 3 just never had
# the name), and r/a must still be there on brick 1.  After brick 1
# returns, heal makes the bricks agree and the rm goes through.
source "$(dirname "$0")/lib.sh"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir "$A/r"
brick_kill 3 KILL
echo a >"$A/r/a"
brick_start 3
wait_for 30 brick_seen_up mA 3 2 || fail "A did not see brick 3 again"
brick_kill 1 KILL
wait_for 30 count_ge 1 "$T/mA.log" "brick 1 .* is down" || fail "A did not see brick 1 go"
err=$(rm "$A/r/a" 2>&1) && fail "rm with one good brick succeeded"
case $err in
*"Read-only file system"*) log "rm refused: $err" ;;
*) fail "rm gave '$err', not EROFS" ;;
esac
check "r/a gone from brick 1" test -e "$(brick_path 1 r/a)"
brick_start 1
wait_for 30 brick_seen_up mA 1 2 || fail "A did not see brick 1 again"
log "heal settles the half-done rm: the three bricks agree on r/"
"$RFS_BIN_DIR/replicafs" heal --wait --timeout 60 --volume "$VOL" >"$T/heal.log" 2>&1 ||
    fail "heal: $(tail -n 3 "$T/heal.log")"
for i in 2 3; do
    check "r/ on brick $i differs from brick 1" \
        test "$(ls "$(brick_path 1 r)")" = "$(ls "$(brick_path "$i" r)")"
done
rm -f "$A/r/a" || fail "rm -f after heal"
check "r/a still there" test ! -e "$A/r/a"
log PASS
