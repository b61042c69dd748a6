#!/usr/bin/env bash
# soak.sh --cycles N: random faults under load on one volume (3 bricks, two
# mounts), N cycles, then the totals: cycles run, operations acknowledged,
# lost or wrong (must be 0), replicas differing after heal (must be 0),
# time to recover and to heal.
#
# Each cycle: the workload on both mounts (8 s, its own log, its own
# thumbnail set), one fault from the list 2 s in, the fault undone,
# recovery timed (from the undo until a write through each mount
# succeeds), the workload finished, `replicafs heal --wait` (timed: what
# `heal --daemon` would do), then `workload verify` of that cycle's log
# through both mounts and against every brick; then the tree is emptied
# through mount 1, so that every cycle is checked alone and the checks do
# not grow with the run.
#
# Env: RFS_BIN_DIR (default build-failover), RFS_SRC_DIR (default the repo),
#      SOAK_SEED (random order of faults), SOAK_SECONDS (workload per cycle,
#      default 8; the fault comes 2 s in and lasts up to 4 s),
#      SOAK_KEEP_GOING=1 (do not stop at the first cycle that lost something),
#      SOAK_FAULTS="two_down kill_brick" (only these faults; default all).
# A cycle that lost something or left replicas differing prints, for each
# path named (up to 5), what every brick holds there and the markers of the
# object and of its folder, before the tree is emptied; a heal that did not
# finish prints the same for the first 3 objects heal named (by id: where
# each brick has it, under which names).
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
read -r -a FAULTS <<<"${SOAK_FAULTS:-kill_brick hang_brick two_down restart_brick}"
heal_built || fail "replicafs heal is not built in $RFS_BIN_DIR"

# where_id HEX: object HEX on each brick: its ids/ entry, names, markers,
# and its folder's markers.
where_id() {
    local id=$1 i
    for i in 1 2 3; do
        local e="$T/brick$i/.replicafs/ids/${id:0:2}/$id" o="$T/brick$i/.replicafs/orphans/$id" n
        if [ -L "$e" ] && [ ! -e "$e" -o "$(stat -c %h "$e")" = 1 ]; then
            n=$(readlink "$e")   # a folder: <parent hex>/<name>
            echo "    brick $i: folder, link $n [$(marks "$e")]" >&2
        elif [ -e "$e" ]; then
            n=$(find "$T/brick$i" -path "$T/brick$i/.replicafs" -prune -o -samefile "$e" -print 2>/dev/null | sed "s|^$T/brick$i/||" | head -n 3 | tr '\n' ' ')
            echo "    brick $i: $(stat -c '%F size=%s nlink=%h' "$e") names: ${n:-none} [$(marks "$e")]" >&2
            for f in $n; do echo "      folder of $f: [$(marks "$(dirname "$T/brick$i/$f")")]" >&2; done
        elif [ -e "$o" ]; then
            echo "    brick $i: orphan (open, no name) [$(marks "$o")]" >&2
        else
            echo "    brick $i: absent" >&2
        fi
    done
}

# where PATH: what each brick holds at PATH (volume-relative) and the
# replication markers (hex) of that object and of its folder.
marks() {
    getfattr -h -d -m 'trusted\.rfs\.(id|dirty|pending)' -e hex "$1" 2>/dev/null |
        sed -n 's/^trusted\.rfs\.//p' | tr '\n' ' '
}
where() {
    local p=$1 i
    for i in 1 2 3; do
        local o="$T/brick$i/$p" d
        d=$(dirname "$o")
        if [ -e "$o" ] || [ -L "$o" ]; then
            echo "    brick $i: $(stat -c '%F size=%s' "$o") [$(marks "$o")] folder [$(marks "$d")]" >&2
        else
            echo "    brick $i: absent; folder $([ -d "$d" ] && echo "[$(marks "$d")]" || echo absent)" >&2
        fi
    done
}

# A write through mount $1 succeeds (quorum is back for it); a temp name,
# which verify lists as INFO only.
write_ok() { { echo x >"$T/$1/.tmp-soak-probe"; } 2>/dev/null; }
# seconds since $1 (date +%s.%N)
since() { python3 -c "import time; print('%.2f' % (time.time() - $1))"; }
# field NAME FILE: the number after NAME in verify's summary line
field() { sed -n "s/.*[ ,(]$1 \([0-9]*\).*/\1/p" "$2" | tail -n 1; }

# seen_all: in both mounts' logs every brick came up more often than it
# went down, i.e. each mount is connected to every brick again, so the next
# fault never meets a mount still reconnecting after the last one.
seen_all() {
    local m i up down
    for m in m1 m2; do
        for i in 1 2 3; do
            up=$(grep -c "brick $i .* is up" "$T/$m.log" || true)
            down=$(grep -c "brick $i .* is down" "$T/$m.log" || true)
            [ "$up" -gt "$down" ] || return 1
        done
    done
}
heal_wait() { "$RFS_BIN_DIR/replicafs" heal --wait --verbose --timeout "${SOAK_HEAL_TIMEOUT:-60}" --volume "$VOL" >"$1" 2>&1; }
# heal_why LOG: the reasons --verbose gave for what did not heal, counted.
heal_why() {
    grep '^heal: ' "$1" | grep -v 'healed bricks' | cut -d' ' -f3- |
        sed "s/'[^']*'/'X'/g" | sort | uniq -c | sort -rn | head -n 5 |
        sed 's/^/    /' >&2 || true
}

fo_start
acked=0 lost=0 stale=0 replicas=0 healfail=0 cleanfail=0 cycle=0
rec_total=0 rec_max=0 heal_total=0 heal_max=0
declare -A seen=()
for ((cycle = 1; cycle <= CYCLES; cycle++)); do
    f=${FAULTS[RANDOM % ${#FAULTS[@]}]}
    b=$((RANDOM % 3 + 1))
    seen[$f]=$((${seen[$f]:-0} + 1))
    WL_LOGS=()
    wl_start "c$cycle" "${SOAK_SECONDS:-8}" --thumb-set "c$cycle"
    sleep 2
    case $f in
    kill_brick) brick_kill "$b" KILL; sleep 4; t0=$(date +%s.%N); brick_start "$b" ;;
    restart_brick) brick_kill "$b" TERM; sleep 1; t0=$(date +%s.%N); brick_start "$b" ;;
    hang_brick) brick_kill "$b" STOP; sleep 4; t0=$(date +%s.%N); brick_kill "$b" CONT ;;
    two_down)
        o=$((b % 3 + 1))
        brick_kill "$b" KILL; brick_kill "$o" KILL; sleep 3
        t0=$(date +%s.%N); brick_start "$b"; brick_start "$o" ;;
    esac
    wait_for 60 seen_all || fail "cycle $cycle: the mounts did not see every brick back"
    wait_for 60 write_ok m1 && wait_for 60 write_ok m2 ||
        fail "cycle $cycle: no write through the mounts 60 s after the fault ended"
    rec=$(since "$t0")
    wl_wait "c$cycle" || true
    acked=$((acked + $(wl_acked "c$cycle")))
    h0=$(date +%s.%N)
    if ! heal_wait "$T/heal-$cycle.log"; then
        healfail=$((healfail + 1))
        log "cycle $cycle: heal --wait failed: $(tail -n 2 "$T/heal-$cycle.log" | tr '\n' ' ')"
        heal_why "$T/heal-$cycle.log"
        grep -o '^heal: [0-9a-f]\{32\} ' "$T/heal-$cycle.log" | cut -d' ' -f2 |
            sort | uniq -c | sort -rn | head -n 3 | while read -r _ id; do
                echo "  object $id:" >&2; where_id "$id"; done || true
    fi
    ht=$(since "$h0")
    read -r rec_total rec_max heal_total heal_max < <(python3 -c "
print($rec_total + $rec, max($rec_max, $rec), $heal_total + $ht, max($heal_max, $ht))")
    "$WL" verify --log "$T/wl-c$cycle.txt" --mount "$T/m1" --mount "$T/m2" \
        --brick "$T/brick1" --brick "$T/brick2" --brick "$T/brick3" \
        >"$T/verify-$cycle.out" 2>&1 || true
    bad=0
    # A stale read (old bytes read after the write's close returned) is a
    # wrong answer the filesystem gave: it counts with lost or wrong.
    for k in missing wrong resurrected partial unexpected excl "stale reads"; do
        n=$(field "$k" "$T/verify-$cycle.out")
        bad=$((bad + ${n:-999999}))
    done
    n=$(field "stale reads" "$T/verify-$cycle.out")
    stale=$((stale + ${n:-0}))
    rep=$(field "replicas differing" "$T/verify-$cycle.out")
    rep=${rep:-999999}
    lost=$((lost + bad))
    replicas=$((replicas + rep))
    log "cycle $cycle: $f (brick $b): acked $(wl_acked "c$cycle"), recovered in ${rec} s, healed in ${ht} s, lost or wrong $bad, replicas differing $rep"
    if [ "$bad" != 0 ] || [ "$rep" != 0 ]; then
        grep -E '^(MISSING|WRONG|PARTIAL|RESURRECTED|UNEXPECTED|EXCL|REPLICA|STALE-READ)' \
            "$T/verify-$cycle.out" | sed -n 1,5p >&2 || true
        grep -E '^(MISSING|WRONG|PARTIAL|RESURRECTED|UNEXPECTED|EXCL|REPLICA)' \
            "$T/verify-$cycle.out" | sed -E 's/^REPLICA [^ ]+ /REPLICA /' |
            cut -d' ' -f2 | tr -d ':' | sort -u | head -n 5 |
            while read -r p; do echo "  $p:" >&2; where "$p"; done || true
        [ "${SOAK_KEEP_GOING:-0}" = 1 ] || break
    fi
    # Empty the volume for the next cycle (through a mount: more deletes).
    if ! find "$T/m1" -mindepth 1 -maxdepth 1 -exec rm -rf {} + ||
        [ -n "$(ls -A "$T/m2")" ]; then
        cleanfail=$((cleanfail + 1))
        log "cycle $cycle: emptying the volume failed; m2 lists: $(ls -A "$T/m2" | head -n 3 | tr '\n' ' ')"
    fi
    if ! heal_wait "$T/heal-$cycle-empty.log"; then
        healfail=$((healfail + 1))
        log "cycle $cycle: heal after emptying failed: $(tail -n 2 "$T/heal-$cycle-empty.log" | tr '\n' ' ')"
        heal_why "$T/heal-$cycle-empty.log"
    fi
done
cycles=$((cycle > CYCLES ? CYCLES : cycle))
faults=""
for k in "${!seen[@]}"; do faults+="$k=${seen[$k]} "; done
mean() { python3 -c "print('%.2f' % ($1 / max($cycles, 1)))"; }
echo "soak: cycles run $cycles ($faults)"
echo "soak: operations acknowledged $acked"
echo "soak: lost or wrong $lost (stale reads among them $stale)"
echo "soak: replicas differing after heal $replicas (heal failures $healfail, emptying failures $cleanfail)"
echo "soak: time to recover: mean $(mean "$rec_total") s, max $rec_max s"
echo "soak: time to heal: mean $(mean "$heal_total") s, max $heal_max s"
[ "$lost" = 0 ] || fail "$lost acknowledged operations lost or wrong"
[ "$replicas" = 0 ] || fail "$replicas replicas differing after heal"
[ "$healfail" = 0 ] || fail "$healfail heals failed"
log PASS
