#!/usr/bin/env bash
# A listing from a dirty copy names only what a lookup finds (bug 21,
# found by failover.stale_survivor in CI).  A create killed brick 1 in
# the middle and reached brick 3, so it failed; folder d stayed dirty on
# both, and brick 2 is blamed for d by both.  A lookup of the new name
# takes the answer heal will keep (bricks 1 and 3 are the sources, they
# tie, the lowest wins: not there), but the listing came from brick 3 and
# showed it: `ls` named a file that `stat` said did not exist, through
# both mounts, until heal.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
volume_start
mount_volume mA "ping-timeout=2"
mkdir "$T/mA/d"
echo "kept" >"$T/mA/d/a"
sync
unmount_volume "$T/mA"
brick_add_extra 3 d/x "a create no quorum made"
brick_set_dirty 1 d
brick_set_dirty 3 d
brick_blame 1 d 0 1 0
brick_blame 3 d 0 1 0
# The listing from brick 3, the copy with the extra name.
mount_volume mB "ping-timeout=2,prefer-brick=3"

listed=$(ls "$T/mB/d" | tr '\n' ' ')
log "ls d: $listed"
check "d/a is listed" grep -qw a <<<"$listed"
for n in $listed; do
    check "listed d/$n can be stat'ed" stat "$T/mB/d/$n"
done
check "d/x is not there" test ! -e "$T/mB/d/x"
check "d/x is not listed" bash -c "! ls '$T/mB/d' | grep -qx x"

"$RFS_BIN_DIR/replicafs" heal --wait --timeout 30 --verbose --volume "$VOL" \
    >"$T/heal.log" 2>&1 || fail "heal --wait: $(tail -n 6 "$T/heal.log")"
check "bricks equal" $HC same "$T" 3
check "heal kept what the mount showed: no d/x on brick 3" \
    test ! -e "$(brick_path 3 d/x)"
check "d/a on brick 2" test "$(cat "$(brick_path 2 d/a)")" = kept
log PASS
