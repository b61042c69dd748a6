#!/usr/bin/env bash
# Rolling restart of every brick, one at a time, under load (zero-downtime
# maintenance): the application sees no error, nothing acknowledged is lost.
# As docs/admin.md says for maintenance, each brick is healed (`replicafs
# heal --wait`) before the next one goes down: otherwise the next restart
# leaves some objects with only one current copy, and changes to them need
# a quorum of current copies.
source "$(dirname "$0")/lib.sh"
fo_start
wl_start a 30 $(fo_strict)
sleep 3
for i in 1 2 3; do
    log "restart brick $i (SIGTERM)"
    brick_kill "$i" TERM
    sleep 2
    brick_start "$i"
    wait_for 30 brick_seen_up m1 "$i" 2 || fail "m1 did not see brick $i again"
    wait_for 30 brick_seen_up m2 "$i" 2 || fail "m2 did not see brick $i again"
    "$RFS_BIN_DIR/replicafs" heal --wait --timeout 60 --volume "$VOL" \
        >"$T/heal-$i.log" 2>&1 ||
        fail "heal after restarting brick $i: $(tail -n 3 "$T/heal-$i.log")"
    log "brick $i healed: $(head -n 1 "$T/heal-$i.log")"
done
wl_wait a || fail "workload saw an error: $(grep workload: "$T/wl-a.log")"
log "acknowledged: $(wl_acked a)"
fo_verify
log PASS
