#!/usr/bin/env bash
# kill -9 of `replicafs heal` stops its workers too.  Bug: the processes
# of a parallel heal (--jobs 4) went on healing after their parent was
# killed, unseen by the admin who had stopped it.  A backlog of 3,000
# files for brick 2; heal starts; once its workers run, the heal is
# killed: within half a second no process of it may be left.
source "$(dirname "$0")/lib.sh"
volume_start
mount_volume mA "ping-timeout=2"
mkdir "$T/mA/d"
brick_kill 2 KILL
wait_for 30 grep -q "brick 2 .* is down" "$T/mA.log" || fail "brick 2 not seen down"
python3 - "$T/mA/d" <<'PY'
import os, sys
for i in range(3000):
    with open(os.path.join(sys.argv[1], "f%04d" % i), "wb") as f:
        f.write(b"x" * 512)
PY
brick_start 2
wait_for 30 brick_seen_up mA 2 2 || fail "mA did not see brick 2 again"
"$RFS_BIN_DIR/replicafs" heal --jobs 4 --volume "$VOL" >"$T/heal.log" 2>&1 &
hp=$!
OTHER_PIDS+=("$hp")
nheal() { pgrep -f -- "[h]eal --jobs 4 --volume $VOL" | wc -l; }
# Poll fast: the workers may run for only a second or two.
for _ in $(seq 3000); do
    [ "$(nheal)" -ge 5 ] && break
    sleep 0.02
done
[ "$(nheal)" -ge 5 ] || fail "the heal's 4 workers never ran: $(cat "$T/heal.log")"
log "heal and its workers: $(nheal) processes; kill -9 of the heal"
kill -9 "$hp"
wait "$hp" 2>/dev/null || true
sleep 0.5
check "no worker outlives the heal ($(nheal) left)" test "$(nheal)" = 0
"$RFS_BIN_DIR/replicafs" heal --wait --timeout 60 --volume "$VOL" >"$T/heal2.log" 2>&1 ||
    fail "heal --wait after the kill: $(tail -n 5 "$T/heal2.log")"
check "d/f2999 is on brick 2" cmp -s "$(brick_path 1 d/f2999)" "$(brick_path 2 d/f2999)"
log PASS
