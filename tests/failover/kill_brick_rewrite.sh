#!/usr/bin/env bash
# kill -9 of one brick, restarted: after brick 2 missed a rewrite
# while it was down and came back, a read through a fresh mount must return
# the acknowledged bytes, not brick 2's stale copy (rule 7: read from a copy
# no other brick blames).  Deterministic: no workload, one file.
source "$(dirname "$0")/lib.sh"
fo_start
printf 'old-%.0s' $(seq 1000) >"$T/m1/f"
log "kill -9 brick 2; rewrite f through m1"
brick_kill 2 KILL
printf 'NEW-%.0s' $(seq 2000) >"$T/m1/f" || fail "rewrite with quorum up failed"
want=$(printf 'NEW-%.0s' $(seq 2000) | sha256sum)
brick_start 2
wait_for 30 brick_seen_up m1 2 2 || fail "m1 did not see brick 2 again"
wait_for 30 brick_seen_up m2 2 2 || fail "m2 did not see brick 2 again"
log "brick 2 pending on brick 1: $(brick_pending_for "$(brick_path 1 f)" 2)"
mount_volume m3 "ping-timeout=2"
for m in m1 m2 m3; do
    for n in 1 2 3 4 5 6; do
        got=$(sha256sum <"$T/$m/f")
        check "read $n of f through $m gives the acknowledged bytes (size $(stat -c %s "$T/$m/f"))" test "$got" = "$want"
    done
done
log PASS
