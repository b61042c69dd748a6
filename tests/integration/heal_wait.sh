#!/usr/bin/env bash
# heal --wait and heal --daemon with a brick that comes back while they run:
# their links reconnect by themselves and they heal what it missed.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir "$A/d"
sync

log "brick 3 down, changes, heal --wait started before it returns"
brick_kill 3 KILL
sleep 0.5
for i in $(seq 30); do echo "file $i" >"$A/d/f$i"; done
sync
"$RFS" heal --volume "$VOL" --wait --timeout 60 >"$T/wait.out" 2>&1 &
HW=$!
OTHER_PIDS+=("$HW")
sleep 2
check "heal --wait still waiting for brick 3" kill -0 "$HW"
brick_start 3
set +e
wait "$HW"
rc=$?
set -e
cat "$T/wait.out" >&2
check "heal --wait exits 0 once brick 3 is back and healed (rc $rc)" test "$rc" = 0
check "bricks equal" $HC same "$T" 3
check "markers clear" $HC clean "$T" 3

log "heal --daemon heals a brick that returns later, and keeps running"
"$RFS" heal --daemon --volume "$VOL" >"$T/daemon.out" 2>&1 &
HD=$!
OTHER_PIDS+=("$HD")
sleep 1
brick_kill 2 KILL
sleep 0.5
for i in $(seq 10); do echo "second $i" >"$A/d/g$i"; done
rm "$A/d/f1"
sync
brick_start 2
wait_for 60 sh -c "$HC same '$T' 3 >/dev/null && $HC clean '$T' 3 >/dev/null" ||
    fail "the daemon did not heal brick 2: $(cat "$T/daemon.out")"
check "the daemon is still running" kill -0 "$HD"
check "the daemon printed a summary" grep -q "entries: 10 created" "$T/daemon.out"
kill "$HD"
log "PASS"
