#!/usr/bin/env bash
# Rebuild of a replaced disk: a tree (files of mixed sizes, directories,
# symlinks, hard links, odd modes and owners) on 3 bricks; brick 2's
# directory is wiped and re-stamped (replicafsd --init), then `replicafs
# rebuild --brick 2` must make it equal to brick 1 again (names, types,
# ids, mode, owner, bytes, symlink targets, hard links) with no marker
# left, `replicafs verify` must pass, and a second rebuild copies nothing.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA

log "a tree through the mount"
for d in 0 1 2 3 4 5; do
    mkdir -p "$A/dir$d/sub$d/deeper"
    for f in $(seq 1 40); do
        head -c $(((f * 7919 + d * 104729) % 200000 + 1)) /dev/urandom \
            >"$A/dir$d/f$f.bin"
    done
    for f in $(seq 1 8); do echo "small $d $f" >"$A/dir$d/sub$d/s$f.txt"; done
    head -c 1500000 /dev/urandom >"$A/dir$d/sub$d/deeper/big.bin"
    ln -s "../f1.bin" "$A/dir$d/sub$d/link_to_f1"
    ln "$A/dir$d/f2.bin" "$A/dir$d/sub$d/hard_f2"
done
: >"$A/empty_file"
mkdir "$A/empty_dir"
ln -s /nonexistent/target "$A/dangling"
chmod 0600 "$A/dir1/f3.bin"
chmod 0711 "$A/dir2"
chown 1234:5678 "$A/dir3/f4.bin"
chown 42:43 "$A/dir4"
sync
check "bricks equal before" sh -c "$HC same '$T' 3 >'$T/same0.out'"

log "brick 2's disk replaced: killed, wiped, re-stamped"
brick_kill 2 KILL
rm -rf "$T/brick2"
brick_start 2 --init
check "brick 2 is empty" test -z "$(ls -A "$T/brick2" | grep -v '^.replicafs$')"
sleep 1

log "rebuild brick 2"
set +e
"$RFS" rebuild --brick 2 --volume "$VOL" --interval 1 >"$T/rb.out" 2>&1
rc=$?
set -e
cat "$T/rb.out" >&2
check "rebuild exits 0 (rc $rc)" test "$rc" = 0
check "rebuild says complete" grep -q ': complete' "$T/rb.out"
check "bricks equal after rebuild: $(cat "$T/same.out" 2>/dev/null)" \
    sh -c "$HC same '$T' 3 >'$T/same.out'"
check "markers clear, no live index entries" $HC clean "$T" 3
for d in 0 1 2 3 4 5; do
    check "hard link kept on brick 2 (dir$d)" test \
        "$(stat -c %i "$(brick_path 2 "dir$d/f2.bin")")" = \
        "$(stat -c %i "$(brick_path 2 "dir$d/sub$d/hard_f2")")"
done
check "owner carried" test "$(stat -c %u:%g "$(brick_path 2 dir3/f4.bin)")" = 1234:5678
check "mode carried" test "$(stat -c %a "$(brick_path 2 dir2)")" = 711

log "verify"
set +e
"$RFS" verify --volume "$VOL" >"$T/verify.out" 2>&1
rc=$?
set -e
tail -5 "$T/verify.out" >&2
check "verify exits 0 after rebuild (rc $rc)" test "$rc" = 0

log "a second rebuild has nothing to copy"
set +e
"$RFS" rebuild --brick 2 --volume "$VOL" --json >"$T/rb2.json" 2>/dev/null
rc=$?
set -e
cat "$T/rb2.json" >&2
check "second rebuild exits 0 (rc $rc)" test "$rc" = 0
check "second rebuild copies no data, makes no entry" python3 - "$T/rb2.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["state"] == "complete", j
assert j["bytes_copied"] == 0 and j["entries_made"] == 0, j
assert j["entries_skipped"] == j["entries_total"] > 300, j
PY

log "errors: brick down, no such brick"
brick_kill 2 KILL
set +e
"$RFS" rebuild --brick 2 --volume "$VOL" >/dev/null 2>&1; rc=$?
"$RFS" rebuild --brick 9 --volume "$VOL" >/dev/null 2>&1; rc9=$?
set -e
check "rebuild of a down brick exits 2 (rc $rc)" test "$rc" = 2
check "rebuild of brick 9 exits 2 (rc $rc9)" test "$rc9" = 2
log "ok"
