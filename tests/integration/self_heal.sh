#!/usr/bin/env bash
# -o self-heal: a mount that meets an object a brick is blamed for runs a
# heal in the background, so a brick that was away catches up without an
# admin; without the option nothing heals by itself.
source "$(dirname "$0")/lib.sh"

volume_start
mount_volume mA "ping-timeout=2,self-heal"
mount_volume mB "ping-timeout=2"
A=$T/mA B=$T/mB

log "brick 3 down; files written and changed through A"
echo one >"$A/old.txt"
brick_kill 3 KILL
mkdir "$A/d"
for i in $(seq 20); do head -c $((i * 1000)) /dev/urandom >"$A/d/f$i"; done
echo two >"$A/old.txt"
brick_start 3
wait_for 30 brick_seen_up mA 3 2 || fail "A did not see brick 3 again"
wait_for 30 brick_seen_up mB 3 2 || fail "B did not see brick 3 again"

healed() {
    [ "$(brick_pending_sum "$(brick_path 1 d)")" = 0 ] &&
        [ "$(brick_pending_sum "$(brick_path 1 old.txt)")" = 0 ] &&
        cmp -s "$(brick_path 1 d/f20)" "$(brick_path 3 d/f20)" &&
        cmp -s "$(brick_path 1 old.txt)" "$(brick_path 3 old.txt)"
}

log "B (no self-heal) reads: nothing heals"
cat "$B/old.txt" "$B/d/f1" >/dev/null
sleep 3
healed && fail "healed although no mount asked for it"
check "brick 1 still blames brick 3 for old.txt" \
    test "$(brick_pending_for "$(brick_path 1 old.txt)" 3)" -gt 0

log "A (self-heal) reads: a background heal brings brick 3 up to date"
cat "$A/old.txt" "$A/d/f1" >/dev/null
wait_for 30 healed || fail "brick 3 not healed 30 s after A met a blamed object"
grep -q "background heal started" "$T/mA.log" || fail "A's log does not say it started a heal"
for i in $(seq 20); do
    check "d/f$i differs on brick 3" cmp -s "$(brick_path 1 "d/f$i")" "$(brick_path 3 "d/f$i")"
done
check "old.txt on brick 3" test "$(cat "$(brick_path 3 old.txt)")" = two
log PASS
