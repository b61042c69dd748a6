#!/usr/bin/env bash
# SIGSTOP one brick during a stream of writes: the mount declares it down
# after the ping timeout (2 s here) and the writes carry on without an
# error; after SIGCONT the brick is reconnected and what it missed is
# marked pending on the others.
source "$(dirname "$0")/lib.sh"
IO="python3 $(dirname "$0")/rfs_io.py"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA

log "streaming writes on A; SIGSTOP brick 3 midway"
$IO stream "$A/stream.bin" 10 "$T/stream.state" >"$T/stream.out" 2>&1 &
S=$!
OTHER_PIDS+=("$S")
wait_for 60 test -s "$T/stream.state" || fail "stream did not start"
sleep 2
brick_kill 3 STOP
before=$(cat "$T/stream.state")
log "brick 3 stopped after $before chunks"
wait_for 60 grep -q "brick 3: silent for .* declaring it down" "$T/mA.log" ||
    fail "brick 3 was not declared down by the ping timeout"
log "brick 3 declared down; the writer goes on"
wait "$S" || fail "the writer saw an error: $(cat "$T/stream.out")"
after=$(cat "$T/stream.state")
check "no writes while brick 3 hung ($before -> $after)" test "$after" -gt "$((before + 5))"
check "stream reads back" $IO verify "$A/stream.bin" "$T/stream.state"
for i in 1 2; do
    p=$(brick_pending_for "$(brick_path "$i" stream.bin)" 3)
    check "pending[3] on brick $i is $p" test "$p" -gt 0
done

log "SIGCONT: brick 3 is reconnected by itself"
brick_kill 3 CONT
wait_for 60 brick_seen_up mA 3 2 ||
    fail "brick 3 did not come back"
printf 'after the hang\n' >"$A/after.txt"
check "new file reaches brick 3" cmp -s "$A/after.txt" "$(brick_path 3 after.txt)"
check "stream still reads back" $IO verify "$A/stream.bin" "$T/stream.state"
log "PASS"
