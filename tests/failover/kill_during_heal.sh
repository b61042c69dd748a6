#!/usr/bin/env bash
# kill -9 during a heal.  Brick 2 is killed, the workload runs on both
# mounts and 24 files of 1 MiB are written, so brick 2 misses a lot; brick
# 2 comes back and `replicafs heal` starts.  Twice, mid-heal (once brick 2
# has taken at least 1 MiB of the heal's data):
#   A. kill -9 of the heal process itself;
#   B. kill -9 of brick 2, the brick being healed (heal must then end, not
#      hang, and report something left: exit 1), and brick 2 restarted.
# After each kill nothing is silently half-healed: every file on which
# brick 2 differs from brick 1 is still blamed on it (pending[2] > 0 on
# bricks 1 or 3), and the mounts still read every acknowledged byte.
# Finally `replicafs heal --wait` succeeds, every brick equals the mounts
# (fo_verify), and no object on any brick carries pending or dirty counts.
source "$(dirname "$0")/lib.sh"
heal_built || fail "replicafs heal is not built (this scenario needs it)"
fo_start

log "kill -9 brick 2, then load the volume"
brick_kill 2 KILL
wait_for 30 count_ge 1 "$T/m1.log" "brick 2 .* is down" || fail "m1 did not see brick 2 down"
wl_start a 8 $(fo_strict)
mkdir "$T/m1/big" || fail "mkdir big"
python3 - "$T/m1/big" "$T/m2/big" <<'PY' || fail "writing the big files with brick 2 down"
import hashlib, os, sys
for i in range(24):
    name = "f%02d" % i
    data = hashlib.sha256(name.encode()).digest() * 32768
    with open(os.path.join(sys.argv[1 + i % 2], name), "wb") as f:
        f.write(data)
PY
sum_big() { (cd "$1/big" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
sum_big "$T/m1" >"$T/big.sum"
check "24 big files" test "$(wc -l <"$T/big.sum")" = 24
wl_wait a || fail "workload saw an error with quorum up: $(grep workload: "$T/wl-a.log" | head -n 5)"
log "workload a: $(tail -n 1 "$T/wl-a.txt")"

brick_start 2
wait_for 30 brick_seen_up m1 2 2 || fail "m1 did not see brick 2 again"
wait_for 30 brick_seen_up m2 2 2 || fail "m2 did not see brick 2 again"

brick2_kb() { du -sk "$T/brick2" | cut -f1; }

# heal_until_grown LOGNAME: start a heal in the background (PID in HEAL_PID)
# and return once brick 2 grew by 1 MiB (0), or the heal ended first (1).
heal_until_grown() {
    local base
    base=$(brick2_kb)
    "$RFS_BIN_DIR/replicafs" heal --volume "$VOL" >"$T/$1.log" 2>&1 &
    HEAL_PID=$!
    OTHER_PIDS+=("$HEAL_PID")
    for _ in $(seq 600); do
        [ $(($(brick2_kb) - base)) -ge 1024 ] && return 0
        kill -0 "$HEAL_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 0
}

# after_kill WHAT: the invariants that must hold after a kill mid-heal.
after_kill() {
    fo_blame_check 2 1 >"$T/blame.out" 2>&1 ||
        { cat "$T/blame.out" >&2; fail "after $1, brick 2 differs from brick 1 without pending markers"; }
    cat "$T/blame.out" >&2
    check "after $1, the big files read back through m1" diff <(sum_big "$T/m1") "$T/big.sum"
    check "after $1, the big files read back through m2" diff <(sum_big "$T/m2") "$T/big.sum"
}

log "A: heal, kill -9 of the heal process mid-way"
heal_until_grown heal-a || fail "the heal ended before brick 2 took 1 MiB: $(tail -n 3 "$T/heal-a.log")"
kill -9 "$HEAL_PID"
wait "$HEAL_PID" 2>/dev/null || true
log "killed the heal (brick 2 at $(brick2_kb) KiB)"
after_kill "killing the heal"

log "B: heal, kill -9 of brick 2 (the sink) mid-way"
if heal_until_grown heal-b; then
    brick_kill 2 KILL
    log "killed brick 2 mid-heal"
    for _ in $(seq 300); do kill -0 "$HEAL_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$HEAL_PID" 2>/dev/null && fail "the heal did not end within 30 s of brick 2's death"
    rc=0
    wait "$HEAL_PID" || rc=$?
    log "heal exit status $rc: $(tail -n 2 "$T/heal-b.log" | tr '\n' ' ')"
    check "a heal that lost its sink reports something left (exit 1, not $rc)" test "$rc" = 1
    brick_start 2
    wait_for 30 brick_seen_up m1 2 3 || fail "m1 did not see brick 2 again"
    wait_for 30 brick_seen_up m2 2 3 || fail "m2 did not see brick 2 again"
    after_kill "killing brick 2"
else
    log "B: the heal finished before brick 2 took 1 MiB more: nothing left to interrupt"
fi

log "heal --wait, then the big files must be equal on every brick"
if ! "$RFS_BIN_DIR/replicafs" heal --wait --timeout 60 --verbose --volume "$VOL" \
        >"$T/heal-c.log" 2>&1; then
    grep -v 'healed bricks' "$T/heal-c.log" | sort | uniq -c | sort -rn | head -n 20 >&2
    "$RFS_BIN_DIR/replicafs" heal --list --volume "$VOL" 2>&1 |
        grep -v " stale " | head -n 10 >&2 || true
    fail "replicafs heal --wait failed: $(tail -n 5 "$T/heal-c.log")"
fi
log "heal: $(grep -v '^heal: ' "$T/heal-c.log" | head -n 1)"
for i in 1 2 3; do
    check "the big files on brick $i after heal" diff <(sum_big "$T/brick$i") "$T/big.sum"
done
# They are no workload's: remove them before verify (which heals again).
rm -r "$T/m1/big" || fail "removing big/ through m1"
fo_verify
log "no object on any brick may carry pending or dirty counts"
python3 - "$T" <<'PY' || fail "markers left after heal"
import os, struct, sys
bad = 0
for i in (1, 2, 3):
    root = "%s/brick%d" % (sys.argv[1], i)
    for d, dirs, fs in os.walk(root):
        if d == root:
            dirs[:] = [x for x in dirs if x != ".replicafs"]
        for n in dirs + fs + ([] if d != root else ["."]):
            p = os.path.join(d, n)
            for a in ("trusted.rfs.pending", "trusted.rfs.dirty"):
                try:
                    v = os.getxattr(p, a, follow_symlinks=False)
                except OSError:
                    continue
                k = len(v) // 8
                if any(struct.unpack("<%dq" % k, v[:8 * k])):
                    bad += 1
                    if bad <= 10:
                        print("brick %d %s: %s = %s" % (i, os.path.relpath(p, root), a, v.hex()))
print("%d objects with markers left" % bad)
sys.exit(1 if bad else 0)
PY
log PASS
