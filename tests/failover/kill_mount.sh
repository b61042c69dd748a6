#!/usr/bin/env bash
# kill -9 of a mount process (web node 2) mid-write, then remount: the
# workload on that mount dies with it (its open operations are uncertain),
# the workload on mount 1 goes on with no error, and nothing either of them
# had acknowledged is lost, wrong, partial or resurrected.
source "$(dirname "$0")/lib.sh"
fo_start
# Two workloads: "a" on m1 only (must not notice), "b" on both (dies).
"$WL" run --mount "$T/m1" --log "$T/wl-a.txt" --threads 2 --seconds 18 \
    --seed "$FO_SEED" --max-size 262144 "${FO_RUN_FLAGS[@]}" $(fo_strict) \
    >"$T/wl-a.log" 2>&1 &
WA=$!
OTHER_PIDS+=("$WA")
WL_LOGS+=("$T/wl-a.txt")
wl_start b 30
sleep 5
m2pid=${MOUNT_PIDS[1]}
log "kill -9 mount m2 (pid $m2pid)"
kill -9 "$m2pid"
wait "$m2pid" 2>/dev/null || true
# Its syscalls now fail (ENOTCONN): the workload on both mounts is killed
# too, as the web node would be.
kill -9 "$WL_PID_b" 2>/dev/null || true
wait "$WL_PID_b" 2>/dev/null || true
fusermount3 -uz "$T/m2" 2>/dev/null || true
log "remount m2"
"$RFS_BIN_DIR/mount.replicafs" "$VOL" "$T/m2" -f -o ping-timeout=2 \
    >>"$T/m2.log" 2>&1 &
MOUNT_PIDS[1]=$!
wait_for 60 mountpoint -q "$T/m2" || fail "m2 did not come back"
wait "$WA" || fail "the workload on m1 saw an error: $(grep workload: "$T/wl-a.log")"
log "acknowledged: a $(wl_acked a), b $(wl_acked b) (b's open ops uncertain)"
fo_verify
log PASS
