#!/usr/bin/env bash
# A network partition of ONE mount from ONE brick under the workload:
# mount 1 cannot reach brick 2 for longer than the ping timeout, while
# mount 2 reaches every brick all along (network namespaces and veth pairs,
# see fo_pm_start in lib.sh).  Quorum holds for both mounts, so nothing
# acknowledged may be lost.  Checks:
#  - mount 1 sees brick 2 go down and come back; mount 2 never loses it;
#  - every file on which brick 2 differs from brick 1 is blamed on brick 2
#    by brick 1 or 3 (pending[2] > 0 on it or its folder), and some differ;
#  - verify through both mounts (the replica check waits for heal).
# The same without the workload, deterministic: ../partition_mount_blame.sh.
source "$(dirname "$0")/lib.sh"
fo_pm_start
[ "${FO_STRICT:-1}" = 1 ] ||
    log "FO_STRICT=0: --strict and read-back checks off"
wl_start a 20 $(fo_strict)
sleep 4
fo_pm_cut
wait_for 10 count_ge 1 "$T/m1.log" "brick 2 .* is down" || fail "m1 did not see brick 2 go down"
sleep 6
fo_pm_restore
wait_for 30 brick_seen_up m1 2 2 || fail "m1 did not reconnect to brick 2"
log "m1 sees brick 2 again"
wl_wait a || fail "workload saw an error: $(grep workload: "$T/wl-a.log" | head -n 5)"
log "workload a: $(tail -n 1 "$T/wl-a.txt")"
nf=$(grep -c '^F ' "$T/wl-a.txt" || true)
[ "$nf" = 0 ] || log "$nf failed operations (errors seen by the application): $(grep '^F ' "$T/wl-a.txt" | awk '{print $3, $4}' | sort | uniq -c | tr '\n' ';')"
check "m2 never lost brick 2" test "$(grep -c 'brick 2 .* is down' "$T/m2.log")" = 0
fo_blame_check 2 1 >"$T/blame.out" 2>&1 || { cat "$T/blame.out" >&2; fail "brick 2 differs from brick 1 without pending markers"; }
cat "$T/blame.out" >&2
grep -q 'differing and blamed: [1-9]' "$T/blame.out" ||
    fail "nothing differs on brick 2: the partition did not take effect"
fo_verify
log PASS
