#!/usr/bin/env bash
# Two of three bricks down: every change fails with EROFS, reads are still
# served from the good copy; with the bricks back, changes work again.
source "$(dirname "$0")/lib.sh"
IO="python3 $(dirname "$0")/rfs_io.py"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir "$A/dir"
printf 'keep me\n' >"$A/dir/file"
head -c 3000000 /dev/urandom >"$T/big.src"
cp "$T/big.src" "$A/big.bin"

log "killing bricks 2 and 3"
brick_kill 2 KILL
brick_kill 3 KILL
wait_for 30 grep -q "brick 3 .* is down" "$T/mA.log" || fail "brick 3 not seen down"
wait_for 30 grep -q "brick 2 .* is down" "$T/mA.log" || fail "brick 2 not seen down"

log "changes fail with EROFS"
expect() { # expect ERRNO OP PATH [ARG]
    local want=$1 got
    shift
    got=$($IO errno-of "$@")
    [ "$got" = "$want" ] || fail "$* gave $got, want $want"
}
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
mount_volume mB "ping-timeout=2"
check "a fresh mount reads too" cmp "$T/big.src" "$T/mB/big.bin"
expect EROFS create "$T/mB/new"

log "bricks back: changes work again"
brick_start 2
brick_start 3
wait_for 60 brick_seen_up mA 3 2 || fail "brick 3 not back"
wait_for 60 brick_seen_up mA 2 2 || fail "brick 2 not back"
printf 'new\n' >"$A/new" || fail "create after the bricks came back"
check "new file on brick 3" cmp -s "$A/new" "$(brick_path 3 new)"
check "file untouched" test "$(cat "$A/dir/file")" = "keep me"
log "PASS"
