#!/usr/bin/env bash
# A file deleted while open does not keep `heal --wait` busy.  With brick 3
# down, a file is written (brick 3 blamed for it) and deleted while a
# process keeps it open: the bricks pin it (docs/brick-layout.md,
# "Orphans") and its heal index entry stays until the last close.  Brick 3
# returns.  Bug: heal counted the orphan as pending, so `heal --wait` went
# on until its timeout and exited 1 for as long as the file stayed open,
# although no name can reach it and nothing needs healing.  Now it is
# listed as "orphan" and heal --wait ends at once (exit 0).
source "$(dirname "$0")/lib.sh"
volume_start
mount_volume mA "ping-timeout=2"
echo keep >"$T/mA/keep"
brick_kill 3 KILL
wait_for 30 grep -q "brick 3 .* is down" "$T/mA.log" || fail "brick 3 not seen down"
exec 7>"$T/mA/open"
echo "written with brick 3 down" >&7
rm "$T/mA/open"
brick_start 3
wait_for 30 brick_seen_up mA 3 2 || fail "mA did not see brick 3 again"
rc=0
"$RFS_BIN_DIR/replicafs" heal --wait --timeout 10 --volume "$VOL" \
    >"$T/heal.log" 2>&1 || rc=$?
log "heal exit $rc: $(tr '\n' ' ' <"$T/heal.log")"
check "heal --wait succeeds with the orphan open (exit $rc)" test "$rc" = 0
check "heal says it left the orphan alone" grep -q "deleted while open" "$T/heal.log"
check "heal --list shows it as an orphan" \
    bash -c "'$RFS_BIN_DIR/replicafs' heal --list --volume '$VOL' | grep -q ' orphan '"
exec 7>&-
log PASS
