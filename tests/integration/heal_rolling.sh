#!/usr/bin/env bash
# Rolling outages: brick 3 misses changes, comes back (not healed yet), then
# brick 1 misses others.  Bricks 1 and 3 now blame each other, but brick 2
# saw everything and nobody blames it: that is not split-brain.  heal takes
# brick 2 as the source for both and the volume ends equal, with every
# change of both rounds.  (Round 2 does not delete a file round 1 made:
# brick 3 lacks it and the mount counts its ENOENT as a refusal that makes
# the unlink fail -- a client bug reported separately, not a heal one.)
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir "$A/r"
echo v1 >"$A/r/f"
echo pre >"$A/r/pre"
sync

log "round 1: brick 3 down"
brick_kill 3 KILL
sleep 0.5
echo v2 >"$A/r/f"
echo one >"$A/r/only_round1"
sync
brick_start 3
wait_for 60 brick_seen_up mA 3 2 || fail "the mount did not reconnect to brick 3"

log "round 2: brick 1 down"
brick_kill 1 KILL
sleep 0.5
echo v3-final >"$A/r/f"
echo two >"$A/r/only_round2"
rm "$A/r/pre"
sync
brick_start 1
sleep 1

set +e
"$RFS" split-brain list --volume "$VOL" >"$T/sb.out" 2>&1
rc=$?
set -e
check "no split-brain (rc $rc): $(cat "$T/sb.out")" test "$rc" = 0
set +e
"$RFS" heal --volume "$VOL" >"$T/heal.out" 2>&1
rc=$?
set -e
cat "$T/heal.out" >&2
check "heal exits 0 (rc $rc)" test "$rc" = 0
check "bricks equal" sh -c "$HC same '$T' 3 >'$T/same.out' || { cat '$T/same.out' >&2; false; }"
check "markers clear" $HC clean "$T" 3
for i in 1 2 3; do
    check "brick $i has the last write" test "$(cat "$(brick_path "$i" r/f)")" = v3-final
    check "brick $i has round 2's file" test -f "$(brick_path "$i" r/only_round2)"
    check "brick $i has round 1's file" test -f "$(brick_path "$i" r/only_round1)"
    check "brick $i lacks the file deleted in round 2" test ! -e "$(brick_path "$i" r/pre)"
done
log "PASS"
