#!/usr/bin/env bash
# Two of three bricks down: every change fails with EROFS, reads are still
# served from the good copy by a mount that knew the objects.  A fresh mount
# must not take the lone brick's word while that brick is suspect (it
# started, lost a client: it may have missed changes): EIO.  After a heal
# with every brick up cleared the marks, a fresh mount reads from the lone
# brick too.  With the bricks back, changes work again.
source "$(dirname "$0")/lib.sh"
IO="python3 $(dirname "$0")/rfs_io.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir "$A/dir"
printf 'keep me\n' >"$A/dir/file"
head -c 3000000 /dev/urandom >"$T/big.src"
cp "$T/big.src" "$A/big.bin"

expect() { # expect ERRNO OP PATH [ARG]
    local want=$1 got
    shift
    got=$($IO errno-of "$@")
    [ "$got" = "$want" ] || fail "$* gave $got, want $want"
}
kill_2_3() {
    local n=$1
    brick_kill 2 KILL
    brick_kill 3 KILL
    wait_for 30 count_ge "$n" "$T/mA.log" "brick 3 .* is down" || fail "brick 3 not seen down"
    wait_for 30 count_ge "$n" "$T/mA.log" "brick 2 .* is down" || fail "brick 2 not seen down"
}
start_2_3() {
    local n=$1
    brick_start 2
    brick_start 3
    wait_for 60 brick_seen_up mA 3 "$n" || fail "brick 3 not back"
    wait_for 60 brick_seen_up mA 2 "$n" || fail "brick 2 not back"
}

log "killing bricks 2 and 3 (no heal yet: brick 1 is suspect since it started)"
kill_2_3 1

log "changes fail with EROFS"
expect EROFS create "$A/new"
expect EROFS create "$A/dir/new"
expect EROFS write "$A/dir/file"
expect EROFS mkdir "$A/newdir"
expect EROFS unlink "$A/dir/file"
expect EROFS rename "$A/dir/file" "$A/dir/file2"
expect EROFS chmod "$A/dir/file"
expect EROFS truncate "$A/big.bin"

log "reads are still served"
sleep 1.2 # attribute caches from before
expect OK read "$A/dir/file"
expect OK listdir "$A/dir"
expect OK stat "$A/big.bin"
check "content of a small file" test "$(cat "$A/dir/file")" = "keep me"
check "content of a big file" cmp "$T/big.src" "$A/big.bin"
# mount_volume waits for a stat of the root to work: it must not here.
mkdir -p "$T/mB"
"$RFS_BIN_DIR/mount.replicafs" "$VOL" "$T/mB" -f -o ping-timeout=2 \
    >>"$T/mB.log" 2>&1 &
MOUNTS+=("$T/mB")
MOUNT_PIDS+=("$!")
wait_for 60 grep -q "mounted on" "$T/mB.log" || fail "mount mB did not come up"
"$RFS" status --volume "$VOL" --json >"$T/status0.json" || true
check "status: brick 1 suspect: $(cat "$T/status0.json")" \
    grep -q '"brick":1,[^}]*"suspect":true' "$T/status0.json"
expect EIO read "$T/mB/big.bin"
expect EIO read "$T/mB/dir/file"
unmount_volume "$T/mB"

log "bricks back, heal with every brick up clears the suspect marks"
start_2_3 2
"$RFS" heal --volume "$VOL" --json >"$T/heal.json" ||
    fail "heal: $(cat "$T/heal.json")"
check "heal cleared every mark: $(cat "$T/heal.json")" \
    grep -q '"suspect_left":0}' "$T/heal.json"
check "heal cleared some mark: $(cat "$T/heal.json")" \
    grep -Eq '"suspect_cleared":[1-3],' "$T/heal.json"

# The healer's exit leaves no mark: its last change was the clear.
"$RFS" status --volume "$VOL" --json >"$T/status-healed.json" || true
check "status after heal: no brick suspect: $(cat "$T/status-healed.json")" \
    bash -c '! grep -q "\"suspect\":true" "$1"' _ "$T/status-healed.json"

log "bricks 2 and 3 down again: a fresh mount reads from brick 1 alone"
kill_2_3 2
mount_volume mC "ping-timeout=2"
check "a fresh mount reads the big file" cmp "$T/big.src" "$T/mC/big.bin"
check "a fresh mount reads the small file" test "$(cat "$T/mC/dir/file")" = "keep me"
expect EROFS create "$T/mC/new"
"$RFS" status --volume "$VOL" --json >"$T/status1.json" || true
check "status: brick 1 not suspect: $(cat "$T/status1.json")" \
    grep -q '"brick":1,[^}]*"suspect":false' "$T/status1.json"

log "bricks back: changes work again"
start_2_3 3
printf 'new\n' >"$A/new" || fail "create after the bricks came back"
check "new file on brick 3" cmp -s "$A/new" "$(brick_path 3 new)"
check "file untouched" test "$(cat "$A/dir/file")" = "keep me"
log "PASS"
