#!/usr/bin/env bash
# O_CREAT|O_EXCL on the same name from two mounts at the same moment, many
# rounds: exactly one winner each round.  mkdir of the same name from both:
# one winner, and the directory has one id on every brick.
source "$(dirname "$0")/lib.sh"
IO="python3 $(dirname "$0")/rfs_io.py"
ROUNDS=${ROUNDS:-200}

volume_start
mount_volume mA
mount_volume mB
mkdir "$T/mA/excl" "$T/mA/dirs"

log "O_CREAT|O_EXCL race, $ROUNDS rounds"
check "exactly one winner per round" $IO excl-race "$T/mA/excl" "$T/mB/excl" "$ROUNDS"
for r in 0 $((ROUNDS / 2)) $((ROUNDS - 1)); do
    check "excl-$r differs between bricks" same_on_bricks "excl/excl-$r"
done
check "a file with two ids" same_ids_on_bricks $(seq -f "excl/excl-%g" 0 $((ROUNDS - 1)))

log "mkdir race, $ROUNDS rounds"
check "exactly one winner per round" $IO mkdir-race "$T/mA/dirs" "$T/mB/dirs" "$ROUNDS"
check "a directory with two ids" same_ids_on_bricks $(seq -f "dirs/dir-%g" 0 $((ROUNDS - 1)))
check "entries on brick 1" test "$(ls "$(brick_path 1 dirs)" | wc -l)" = "$ROUNDS"
check "entries on brick 3" test "$(ls "$(brick_path 3 dirs)" | wc -l)" = "$ROUNDS"
log "PASS"
