#!/usr/bin/env bash
# Two of three bricks down: writes are refused with EROFS, reads are served
# from the survivor, and once the bricks return nothing acknowledged is lost.
#
# Reads without quorum (docs/reliability.md, rule 7): a lone brick cannot
# show that it missed nothing while it was away, so a mount reads from it
# only objects whose replication state it learnt while a quorum was up (its
# working set); others are refused with EIO, never served from what may be
# an old copy.  Both mounts read the whole tree first, as web nodes serving
# it would have.
source "$(dirname "$0")/lib.sh"
fo_start
wl_start a 8 $(fo_strict)
wl_wait a || fail "workload before the fault: $(grep workload: "$T/wl-a.log")"
"$WL" verify --log "$T/wl-a.txt" --mount "$T/m1" --mount "$T/m2" \
    >"$T/verify-before.out" 2>&1 ||
    { cat "$T/verify-before.out" >&2; fail "verify before the fault"; }
log "acknowledged: $(wl_acked a); kill -9 bricks 1 and 3"
brick_kill 1 KILL
brick_kill 3 KILL
sleep 3
expect_erofs
log "reads served: the tree reads back through both mounts"
"$WL" verify --log "$T/wl-a.txt" --mount "$T/m1" --mount "$T/m2" \
    >"$T/verify-degraded.out" 2>&1 ||
    { cat "$T/verify-degraded.out" >&2; fail "reads without quorum"; }
log "workload without quorum (errors expected, nothing acknowledged must be lost)"
wl_start b 4
wl_wait b || true
log "b acknowledged $(wl_acked b) (only reads can be)"
brick_start 1
brick_start 3
wait_for 30 brick_seen_up m1 1 2 || fail "m1 did not see brick 1 again"
wait_for 30 brick_seen_up m1 3 2 || fail "m1 did not see brick 3 again"
fo_verify
log PASS
