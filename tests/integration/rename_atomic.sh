#!/usr/bin/env bash
# Rename over an existing file is atomic across mounts: while A writes new
# versions and renames each over `target`, a reader on B never sees ENOENT
# and always reads one whole version.
source "$(dirname "$0")/lib.sh"
IO="python3 $(dirname "$0")/rfs_io.py"
VERSIONS=${VERSIONS:-300}
# 1 (default): a read() of a file replaced after open() must succeed too
# (POSIX keeps an open, unlinked file readable; the brick pins open objects,
# docs/brick-layout.md "Orphans").  0 tolerates ESTALE there.
STRICT_READ=${STRICT_READ:-1}
# Pause between versions.  With none (hundreds of renames a second on one
# name) an open can lose the race twice: the kernel re-resolves a name once
# on ESTALE, and the brick cannot open an id whose last name is gone.
PAUSE_MS=${PAUSE_MS:-20}

volume_start
mount_volume mA
mount_volume mB
mkdir "$T/mA/r"
$IO rename-writer "$T/mA/r" 1 >/dev/null
wait_for 10 test -e "$T/mB/r/target" || fail "target not visible on B"

log "B reads r/target in a loop while A renames $VERSIONS versions over it"
$IO rename-reader "$T/mB/r" "$T/stop" "$STRICT_READ" >"$T/reader.out" 2>&1 &
R=$!
OTHER_PIDS+=("$R")
$IO rename-reader "$T/mA/r" "$T/stop" "$STRICT_READ" >"$T/reader-a.out" 2>&1 &
RA=$!
OTHER_PIDS+=("$RA")
$IO rename-writer "$T/mA/r" "$VERSIONS" "$PAUSE_MS" >"$T/writer.out" 2>&1 ||
    fail "writer: $(cat "$T/writer.out")"
touch "$T/stop"
wait "$R" || fail "reader on B: $(cat "$T/reader.out")"
wait "$RA" || fail "reader on A: $(cat "$T/reader-a.out")"
log "$(cat "$T/reader.out")"
check "reader on B read nothing" grep -q "rename-reader: [1-9]" "$T/reader.out"
check "one file left in r/" test "$(ls "$T/mB/r")" = target
check "replicas identical" same_on_bricks r/target
log "PASS"
