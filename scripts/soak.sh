#!/usr/bin/env bash
# soak.sh --cycles N: random faults under load on one volume (3 bricks, two
# mounts), N cycles, then the totals: cycles run, operations acknowledged,
# lost or wrong (must be 0), replicas differing after heal (must be 0, or
# "not checked: no heal" until `replicafs heal` exists), time to recover.
#
# Each cycle: the workload on both mounts (8 s, its own log), one fault from
# the list, the fault undone, the workload finished, recovery timed (from
# the undo until a write through each mount succeeds), then `workload
# verify` of every log so far through both mounts.
#
# Env: RFS_BIN_DIR (default build-failover), RFS_SRC_DIR (default the repo),
#      SOAK_SEED (random order of faults).
# Usage: scripts/soak.sh --cycles N
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export RFS_BIN_DIR=${RFS_BIN_DIR:-$here/build-failover}
export RFS_SRC_DIR=${RFS_SRC_DIR:-$here}
CYCLES=10
while [ $# -gt 0 ]; do
    case $1 in
    --cycles) CYCLES=$2; shift 2 ;;
    *) echo "usage: $0 --cycles N" >&2; exit 2 ;;
    esac
done
export RFS_TEST_TIMEOUT=$((CYCLES * 120 + 120))
set --
source "$RFS_SRC_DIR/tests/failover/lib.sh"
RANDOM=${SOAK_SEED:-$$}
FAULTS=(kill_brick hang_brick two_down restart_brick)

# A write through mount $1 succeeds (quorum is back for it).
write_ok() { { echo x >"$T/$1/.soak-probe"; } 2>/dev/null; }

fo_start
acked=0 lost=0 cycle=0 rec_total=0 rec_max=0
declare -A seen=()
for ((cycle = 1; cycle <= CYCLES; cycle++)); do
    f=${FAULTS[RANDOM % ${#FAULTS[@]}]}
    b=$((RANDOM % 3 + 1))
    seen[$f]=$((${seen[$f]:-0} + 1))
    wl_start "c$cycle" 8
    sleep 2
    log "cycle $cycle: $f (brick $b)"
    case $f in
    kill_brick) brick_kill "$b" KILL; sleep 4; t0=$(date +%s.%N); brick_start "$b" ;;
    restart_brick) brick_kill "$b" TERM; sleep 1; t0=$(date +%s.%N); brick_start "$b" ;;
    hang_brick) brick_kill "$b" STOP; sleep 4; t0=$(date +%s.%N); brick_kill "$b" CONT ;;
    two_down)
        o=$((b % 3 + 1))
        brick_kill "$b" KILL; brick_kill "$o" KILL; sleep 3
        t0=$(date +%s.%N); brick_start "$b"; brick_start "$o" ;;
    esac
    wait_for 60 write_ok m1 && wait_for 60 write_ok m2 ||
        fail "cycle $cycle: no write through the mounts 60 s after the fault ended"
    rec=$(python3 -c "import time; print('%.2f' % (time.time() - $t0))")
    rec_total=$(python3 -c "print($rec_total + $rec)")
    rec_max=$(python3 -c "print(max($rec_max, $rec))")
    wl_wait "c$cycle" || true
    acked=$((acked + $(wl_acked "c$cycle")))
    args=()
    for l in "${WL_LOGS[@]}"; do args+=(--log "$l"); done
    "$WL" verify "${args[@]}" --mount "$T/m1" --mount "$T/m2" \
        >"$T/verify-$cycle.out" 2>&1 || true
    bad=$(python3 - "$T/verify-$cycle.out" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
m = re.search(r"missing (\d+), wrong (\d+), resurrected (\d+), partial (\d+)", s)
print(sum(map(int, m.groups())) if m else 999999)
PY
)
    [ "$bad" = 0 ] || { log "cycle $cycle: $bad lost or wrong"; grep -E '^(MISSING|WRONG|PARTIAL|RESURRECTED)' "$T/verify-$cycle.out" >"$T/bad-$cycle.txt" || true; sed -n 1,3p "$T/bad-$cycle.txt" >&2; }
    lost=$bad # cumulative: verify checks every log so far
done
cycles=$((cycle - 1))
replicas="not checked: no heal"
if heal_built; then
    "$RFS_BIN_DIR/replicafs" heal --wait --volume "$VOL" >"$T/heal.log" 2>&1 &&
        { for i in 1 2 3; do args+=(--brick "$T/brick$i"); done
          "$WL" verify "${args[@]}" --mount "$T/m1" --mount "$T/m2" >"$T/verify-final.out" 2>&1 || true
          replicas=$(sed -n 's/.*replicas differing \([0-9]*\).*/\1/p' "$T/verify-final.out" | tail -1); } ||
        replicas="heal failed: $(tail -n 1 "$T/heal.log")"
else
    log "SKIP replica check: replicafs heal not built"
fi
faults=""
for k in "${!seen[@]}"; do faults+="$k=${seen[$k]} "; done
echo "soak: cycles run $cycles ($faults)"
echo "soak: operations acknowledged $acked"
echo "soak: lost or wrong $lost"
echo "soak: replicas differing after heal: $replicas"
echo "soak: time to recover: mean $(python3 -c "print('%.2f' % ($rec_total / max($cycles, 1)))") s, max $rec_max s"
[ "$lost" = 0 ] || fail "$lost acknowledged operations lost or wrong"
