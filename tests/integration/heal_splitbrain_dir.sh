#!/usr/bin/env bash
# Split-brain of a directory (its entries): brick 2 missed an unlink, and
# the markers are then set by hand so that bricks 1 and 2 blame each other
# and both blame brick 3.  heal skips the directory; `split-brain resolve
# --source-brick 2` makes brick 2's listing the truth: the file it still has
# comes back on bricks 1 and 3 (same id, same bytes) and the markers clear.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir "$A/sbd"
echo "x data" >"$A/sbd/x"
echo "y data" >"$A/sbd/y"
sync

brick_kill 2 KILL
sleep 0.5
rm "$A/sbd/x"
sync
brick_start 2
sleep 1
d1=$(brick_path 1 sbd); d2=$(brick_path 2 sbd); d3=$(brick_path 3 sbd)
$HC setpend "$d1" 0,1,1
$HC setpend "$d2" 1,0,1
$HC setpend "$d3" 0,0,0
for i in 1 2; do touch "$T/brick$i/.replicafs/heal/$($HC idhex "$d1")"; done

set +e
"$RFS" heal --volume "$VOL" >"$T/heal.out" 2>&1
rc=$?
set -e
cat "$T/heal.out" >&2
check "heal exits 1 on split-brain (rc $rc)" test "$rc" = 1
check "heal did not bring x back" test ! -e "$(brick_path 1 sbd/x)"
check "heal did not delete x on brick 2" test -e "$(brick_path 2 sbd/x)"
"$RFS" split-brain list --volume "$VOL" >"$T/list.out" || true
check "list names the dir" grep -q "^/sbd " "$T/list.out"

"$RFS" split-brain resolve /sbd --source-brick 2 --volume "$VOL" >"$T/r.out" ||
    fail "resolve: $(cat "$T/r.out")"
cat "$T/r.out" >&2
"$RFS" heal --volume "$VOL" >"$T/heal2.out" 2>&1 || fail "heal after resolve: $(cat "$T/heal2.out")"
check "bricks equal" sh -c "$HC same '$T' 3 >'$T/same.out' || { cat '$T/same.out' >&2; false; }"
check "markers clear" $HC clean "$T" 3
check "x is back on brick 1 with its bytes" test "$(cat "$(brick_path 1 sbd/x)")" = "x data"
check "x has one id everywhere" same_ids_on_bricks sbd/x sbd/y
log "PASS"
