#!/usr/bin/env bash
# A brick comes back: the client reconnects by itself, a file kept open
# across the outage keeps working, new writes reach the returned brick,
# what it missed stays marked pending, and reads never come from it while
# it is blamed (even on a mount that prefers it).
source "$(dirname "$0")/lib.sh"
IO="python3 $(dirname "$0")/rfs_io.py"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir "$T/sig"

log "a file held open on A; step 0 with all bricks up"
$IO hold-write "$A/held.bin" "$T/sig" 3 >"$T/hold.out" 2>&1 &
H=$!
OTHER_PIDS+=("$H")
touch "$T/sig/go.0"
wait_for 60 test -e "$T/sig/done.0" || fail "step 0: $(cat "$T/hold.out")"
printf 'before\n' >"$A/before.txt"

log "brick 2 killed; step 1 and a new file while it is down"
brick_kill 2 KILL
touch "$T/sig/go.1"
wait_for 60 test -e "$T/sig/done.1" || fail "step 1: $(cat "$T/hold.out")"
printf 'while down\n' >"$A/during.txt"
printf 'changed while down\n' >"$A/before.txt"

log "brick 2 restarted: the mount reconnects by itself"
brick_start 2
wait_for 60 brick_seen_up mA 2 2 ||
    fail "the mount did not reconnect to brick 2"
touch "$T/sig/go.2"
wait_for 60 test -e "$T/sig/done.2" || fail "step 2: $(cat "$T/hold.out")"
wait "$H" || fail "the held file failed: $(cat "$T/hold.out")"
printf 'after\n' >"$A/after.txt"

log "new writes reach brick 2"
check "new file on brick 2" cmp -s "$A/after.txt" "$(brick_path 2 after.txt)"
$IO chunk 2 >"$T/chunk2"
check "step 2 of the held file on brick 2" \
    cmp -s "$T/chunk2" <(tail -c +$((2 * 65536 + 1)) "$(brick_path 2 held.bin)")
check "what it missed is not on brick 2" test ! -e "$(brick_path 2 during.txt)"

log "what brick 2 missed stays marked"
for i in 1 3; do
    for rel in held.bin before.txt; do
        p=$(brick_pending_for "$(brick_path "$i" "$rel")" 2)
        check "pending[2] on brick $i $rel is $p" test "$p" -gt 0
    done
    p=$(brick_pending_for "$T/brick$i" 2)
    check "pending[2] on brick $i root is $p" test "$p" -gt 0
done

log "reads avoid the blamed brick, even with prefer-brick=2"
{ $IO chunk 0; $IO chunk 1; $IO chunk 2; } >"$T/held.expect"
for m in mA mB; do
    [ "$m" = mB ] && mount_volume mB "prefer-brick=2"
    check "held file on $m" cmp "$T/held.expect" "$T/$m/held.bin"
    check "before.txt on $m" test "$(cat "$T/$m/before.txt")" = "changed while down"
    check "during.txt on $m" test "$(cat "$T/$m/during.txt")" = "while down"
    check "after.txt on $m" test "$(cat "$T/$m/after.txt")" = "after"
done
log "PASS"
