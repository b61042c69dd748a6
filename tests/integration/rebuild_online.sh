#!/usr/bin/env bash
# Rebuild while the volume is written: brick 2's disk is replaced and a
# throttled rebuild runs while a client, through the mount, overwrites,
# appends to, creates, renames and deletes files and makes directories all
# over the tree (in directories the rebuild has done and ones it has not).
# The rebuild must finish (exit 0) with brick 2 equal to brick 1 -- every
# write made during the rebuild on it -- and no marker left; the mount
# reads what was written.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
# Without the mount's `self-heal` option: the rebuild alone must do it.
mount_volume mA "ping-timeout=2"
A=$T/mA

log "a tree of ~15 MB"
for d in 0 1 2 3 4 5; do
    mkdir -p "$A/d$d/sub"
    for f in $(seq 1 30); do
        head -c $(((f * 7919 + d * 15485863) % 140000 + 16384)) /dev/urandom \
            >"$A/d$d/f$f"
    done
    echo "small $d" >"$A/d$d/sub/s"
done
sync

log "brick 2 replaced; rebuild at 2 MB/s while a client writes"
brick_kill 2 KILL
rm -rf "$T/brick2"
brick_start 2 --init
sleep 1
"$RFS" rebuild --brick 2 --volume "$VOL" --max-rate 2 --interval 1 \
    >"$T/rb.out" 2>&1 &
rpid=$!
OTHER_PIDS+=("$rpid")
mkdir -p "$T/expect"
for round in 1 2 3 4 5 6; do
    for d in 0 2 5; do
        # overwrite the middle, append, create, rename, delete, mkdir
        dd if=/dev/urandom of="$A/d$d/f$round" bs=4096 count=3 seek=2 \
            conv=notrunc 2>/dev/null
        head -c 5000 /dev/urandom >>"$A/d$d/f$((round + 10))"
        head -c $((round * 30000)) /dev/urandom >"$A/d$d/new_$round"
        mv "$A/d$d/f$((round + 20))" "$A/d$d/renamed_$round"
        [ "$round" -le 4 ] && rm "$A/d$d/f$((round + 26))"
        mkdir -p "$A/d$d/newdir_$round"
        echo "in new dir $round" >"$A/d$d/newdir_$round/x"
    done
    sleep 0.7
done
sync
# what the client wrote, as the mount reads it
(cd "$A" && find . -type f -print0 | sort -z | xargs -0 sha1sum) >"$T/expect.sha"
check "rebuild still running after the writes (the test needs it)" \
    kill -0 "$rpid"
set +e
wait "$rpid"
rc=$?
set -e
cat "$T/rb.out" >&2
check "rebuild during writes exits 0 (rc $rc)" test "$rc" = 0
check "bricks equal after rebuild: $(cat "$T/same.out" 2>/dev/null)" \
    sh -c "$HC same '$T' 3 >'$T/same.out'"
# (not `heal_check.py clean`: a file deleted while blamed leaves a stale
# heal index entry on the daemon side, docs/heal.md "Not done yet")
check "no live object carries a marker" python3 - "$T" <<'PY'
import os, struct, sys
bad = 0
for b in (1, 2, 3):
    root = "%s/brick%d" % (sys.argv[1], b)
    for dp, dirs, files in os.walk(root):
        if dp == root:
            dirs[:] = [d for d in dirs if d != ".replicafs"]
        for name in [""] + dirs + files:
            p = os.path.join(dp, name) if name else dp
            for x in ("trusted.rfs.pending", "trusted.rfs.dirty"):
                try:
                    v = os.getxattr(p, x, follow_symlinks=False)
                except OSError:
                    continue
                if any(struct.unpack("<%dq" % (len(v) // 8), v)):
                    print("brick %d: %s: %s nonzero" % (b, p, x))
                    bad += 1
sys.exit(1 if bad else 0)
PY
check "the mount reads what was written" \
    sh -c "cd '$A' && sha1sum --quiet -c '$T/expect.sha'"
check "brick 2 holds what was written" \
    sh -c "cd '$T/brick2' && sha1sum --quiet -c '$T/expect.sha'"
log "ok"
