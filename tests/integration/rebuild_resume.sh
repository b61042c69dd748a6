#!/usr/bin/env bash
# An interrupted rebuild resumes: brick 2's disk is replaced, a rebuild
# throttled by --max-rate is stopped by SIGINT midway (exit 1,
# "interrupted", the rate kept under the limit), a second one is killed
# with SIGKILL, and a third finishes: it skips what the first two did
# (counts in its --json output), copies only the rest, and leaves brick 2
# equal to brick 1 with no marker left.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA

log "a tree of ~20 MB"
for d in 0 1 2 3 4 5 6 7; do
    mkdir -p "$A/d$d/sub"
    for f in $(seq 1 30); do
        head -c $(((f * 7919 + d * 15485863) % 140000 + 16384)) /dev/urandom \
            >"$A/d$d/f$f"
    done
    for f in 1 2 3 4 5; do echo "small $d $f" >"$A/d$d/sub/s$f"; done
done
sync

log "brick 2 replaced"
brick_kill 2 KILL
rm -rf "$T/brick2"
brick_start 2 --init
sleep 1

log "rebuild at 3 MB/s, SIGINT after 2 s"
"$RFS" rebuild --brick 2 --volume "$VOL" --max-rate 3 --json --interval 0.5 \
    >"$T/r1.json" 2>"$T/r1.err" &
pid=$!
OTHER_PIDS+=("$pid")
sleep 2
kill -INT "$pid"
set +e
wait "$pid"
rc=$?
set -e
cat "$T/r1.json" "$T/r1.err" >&2
check "interrupted rebuild exits 1 (rc $rc)" test "$rc" = 1
check "plain progress lines on stderr with --json" count_ge 2 "$T/r1.err" '^rebuild: '
check "first run: interrupted, partial, under the rate" python3 - "$T/r1.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["state"] == "interrupted", j
assert 0 < j["bytes_copied"] < j["bytes_total"], j
assert j["bytes_per_s"] <= 3.3e6, j
PY

log "second run killed with SIGKILL after 1.5 s"
"$RFS" rebuild --brick 2 --volume "$VOL" --max-rate 3 >"$T/r2.out" 2>&1 &
pid=$!
OTHER_PIDS+=("$pid")
sleep 1.5
workers=$(ps -o pid= --ppid "$pid" || true)
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
# Its workers get SIGTERM (PR_SET_PDEATHSIG) and stop after the object in
# hand; let them, or the third run's count races with their last creates.
for w in $workers; do
    OTHER_PIDS+=("$w")
    wait_for 30 sh -c "! kill -0 $w 2>/dev/null" || fail "worker $w did not stop"
done
check "the killed rebuild's workers stopped" test -z "$(ps -o pid= --ppid "$pid" 2>/dev/null)"

log "third run (one process: --jobs 1) finishes"
set +e
"$RFS" rebuild --brick 2 --volume "$VOL" --jobs 1 --json >"$T/r3.json" 2>"$T/r3.err"
rc=$?
set -e
cat "$T/r3.json" >&2
check "resumed rebuild exits 0 (rc $rc)" test "$rc" = 0
check "third run skips what was done, copies only the rest" \
    python3 - "$T/r1.json" "$T/r3.json" <<'PY'
import json, sys
r1 = json.load(open(sys.argv[1]))
r3 = json.load(open(sys.argv[2]))
assert r3["state"] == "complete", r3
assert r3["bytes_total"] == r1["bytes_total"], (r1, r3)
# what run 1 finished is skipped whole; run 2 (killed) finished more
assert r3["bytes_skipped"] > r1["bytes_copied"], (r1, r3)
assert r3["bytes_copied"] <= r3["bytes_total"] - r3["bytes_skipped"], r3
assert r3["entries_made"] + r3["entries_skipped"] <= r3["entries_total"], r3
assert r3["entries_skipped"] > 0, r3
PY
check "bricks equal after the resumed rebuild: $(cat "$T/same.out" 2>/dev/null)" \
    sh -c "$HC same '$T' 3 >'$T/same.out'"
check "markers clear" $HC clean "$T" 3
log "ok"
