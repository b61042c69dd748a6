#!/usr/bin/env bash
# kill -9 one brick in the middle of a stream of writes: the application
# sees no error, every acknowledged byte reads back (also on another mount),
# and the surviving bricks hold pending markers against the dead one.
source "$(dirname "$0")/lib.sh"
IO="python3 $(dirname "$0")/rfs_io.py"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA

log "streaming 64 KiB writes and small files on A; killing brick 2 midway"
$IO stream "$A/stream.bin" 8 "$T/stream.state" >"$T/stream.out" 2>&1 &
S=$!
OTHER_PIDS+=("$S")
mkdir "$A/small"
$IO smallfiles "$A/small" 8 "$T/small.state" >"$T/small.out" 2>&1 &
F=$!
OTHER_PIDS+=("$F")
wait_for 60 test -s "$T/stream.state" || fail "stream did not start"
sleep 2
before=$(cat "$T/stream.state")
brick_kill 2 KILL
log "brick 2 killed after $before chunks"
wait "$S" || fail "the writer saw an error: $(cat "$T/stream.out")"
wait "$F" || fail "the small-file writer saw an error: $(cat "$T/small.out")"
after=$(cat "$T/stream.state")
log "writers done: $after chunks, $(cat "$T/small.state") small files"
check "no writes after the kill ($before -> $after)" test "$after" -gt "$((before + 5))"

log "every acknowledged byte reads back, on A and on a fresh mount B"
check "stream on A" $IO verify "$A/stream.bin" "$T/stream.state"
check "small files on A" $IO verify-small "$A/small" "$T/small.state"
mount_volume mB
check "stream on B" $IO verify "$T/mB/stream.bin" "$T/stream.state"
check "small files on B" $IO verify-small "$T/mB/small" "$T/small.state"
check "survivors' replicas identical" cmp "$(brick_path 1 stream.bin)" \
    "$(brick_path 3 stream.bin)"

log "pending markers against brick 2 on the survivors"
for i in 1 3; do
    p=$(brick_pending_for "$(brick_path "$i" stream.bin)" 2)
    check "pending[2] on brick $i stream.bin is $p" test "$p" -gt 0
    p=$(brick_pending_for "$(brick_path "$i" small)" 2)
    check "pending[2] on brick $i small/ is $p" test "$p" -gt 0
    p=$(brick_pending_for "$(brick_path "$i" "small/small-$(($(cat "$T/small.state") - 1))")" 2)
    check "pending[2] on brick $i's last small file is $p" test "$p" -gt 0
    p=$(brick_pending_for "$(brick_path "$i" stream.bin)" "$i")
    check "brick $i blames itself ($p)" test "$p" = 0
done
check "the mount said brick 2 is down" grep -q "brick 2 .* is down" "$T/mA.log"
log "PASS"
