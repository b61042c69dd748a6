#!/usr/bin/env bash
# Heal after a brick missed every kind of change: creates, overwrites,
# truncates, deletes, renames (files and a directory, across directories),
# chmod/chown, mkdir/rmdir, symlinks, hard links.  After `replicafs heal`
# the three brick directories hold the same tree (content, mode, owner,
# ids), no marker is left and no heal index names a live object; a file
# deleted while the brick was down does not come back.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA

log "a tree with all bricks up"
mkdir -p "$A/d1/sub" "$A/d2" "$A/gone_dir/inner" "$A/moved_dir/x"
for i in 1 2 3 4 5; do head -c $((i * 70000)) /dev/urandom >"$A/d1/f$i"; done
echo keep >"$A/d1/sub/keep.txt"
echo old >"$A/overwrite.txt"
head -c 300000 /dev/urandom >"$A/trunc.bin"
echo del >"$A/d2/deleted.txt"
echo ren >"$A/d1/renamed_src.txt"
echo mv >"$A/d1/cross.txt"
echo inner >"$A/gone_dir/inner/a"
echo x >"$A/moved_dir/x/y"
echo meta >"$A/meta.txt"
sync
check "clean before" $HC clean "$T" 3
"$RFS" heal --volume "$VOL" >"$T/heal0.out" || fail "heal of a clean volume: $(cat "$T/heal0.out")"

log "brick 3 down; every kind of change"
brick_kill 3 KILL
ino_file=$(stat -c %i "$(brick_path 3 d1/renamed_src.txt)")
ino_cross=$(stat -c %i "$(brick_path 3 d1/cross.txt)")
ino_deep=$(stat -c %i "$(brick_path 3 moved_dir/x/y)")
sleep 0.5
mkdir -p "$A/new_dir/deep/deeper"
head -c 1500000 /dev/urandom >"$A/new_dir/deep/deeper/big.bin"
echo new >"$A/new.txt"
ln -s ../new.txt "$A/d1/link"
echo overwritten-now >"$A/overwrite.txt"
truncate -s 1000 "$A/trunc.bin"
rm "$A/d2/deleted.txt"
rm -r "$A/gone_dir"
mv "$A/d1/renamed_src.txt" "$A/d1/renamed_dst.txt"
mv "$A/d1/cross.txt" "$A/d2/cross.txt"
mv "$A/moved_dir" "$A/d2/moved_dir2"
chmod 0600 "$A/meta.txt"
chown 1234:5678 "$A/meta.txt"
chmod 0711 "$A/d1/sub"
chmod 0750 "$A/d2"
chown 42:43 "$A/new_dir"
ln "$A/d1/f1" "$A/d2/f1_hardlink"
rmdir "$A/d1/sub" 2>/dev/null || rm -r "$A/d1/sub"
dd if=/dev/urandom of="$A/d1/f3" bs=4096 count=2 seek=10 conv=notrunc 2>/dev/null
sync

log "brick 3 back: not equal yet, and heal --list shows the backlog"
brick_start 3
sleep 1
$HC same "$T" 3 >"$T/same0.out" && fail "bricks equal before heal?"
set +e
"$RFS" heal --list --volume "$VOL" >"$T/list.out"
rc=$?
set -e
cat "$T/list.out" >&2
check "heal --list exits 1 with a backlog (rc $rc)" test "$rc" = 1
check "heal --list names the root" grep -q ' /$' "$T/list.out"

log "heal"
set +e
"$RFS" heal --volume "$VOL" >"$T/heal.out" 2>&1
rc=$?
set -e
cat "$T/heal.out" >&2
check "heal exits 0 (rc $rc)" test "$rc" = 0
check "bricks equal after heal: $(cat "$T/same.out" 2>/dev/null)" \
    sh -c "$HC same '$T' 3 >'$T/same.out'"
check "markers clear, no live index entries" $HC clean "$T" 3
check "deleted file did not come back" test ! -e "$(brick_path 3 d2/deleted.txt)"
check "deleted dir did not come back" test ! -e "$(brick_path 3 gone_dir)"
check "rename replayed" test -f "$(brick_path 3 d1/renamed_dst.txt)"
check "old name gone" test ! -e "$(brick_path 3 d1/renamed_src.txt)"
check "file rename replayed as a rename (same inode)" \
    test "$(stat -c %i "$(brick_path 3 d1/renamed_dst.txt)")" = "$ino_file"
check "cross-dir rename replayed as a rename" \
    test "$(stat -c %i "$(brick_path 3 d2/cross.txt)")" = "$ino_cross"
check "dir rename replayed as a rename (content not re-copied)" \
    test "$(stat -c %i "$(brick_path 3 d2/moved_dir2/x/y)")" = "$ino_deep"
check "hard link replayed as a link" test \
    "$(stat -c %i "$(brick_path 3 d1/f1)")" = "$(stat -c %i "$(brick_path 3 d2/f1_hardlink)")"
check "owner carried" test "$(stat -c %u:%g:%a "$(brick_path 3 meta.txt)")" = 1234:5678:600
check "dir mode carried" test "$(stat -c %a "$(brick_path 3 d2)")" = 750
check "dir owner carried" test "$(stat -c %u:%g "$(brick_path 3 new_dir)")" = 42:43
check "symlink carried" test "$(readlink "$(brick_path 3 d1/link)")" = ../new.txt
check "heal output counts" grep -q "entries: .* created, [1-9][0-9]* linked" "$T/heal.out"
check "heal --list is empty now" "$RFS" heal --list --volume "$VOL"

log "a second heal finds nothing; status is healthy"
"$RFS" heal --volume "$VOL" --json >"$T/heal2.out" || fail "second heal: $(cat "$T/heal2.out")"
check "nothing healed the second time" grep -q '"healed":0' "$T/heal2.out"
"$RFS" status --volume "$VOL" >"$T/status.out" || true
log "with a brick down, heal exits 1 and says so"
brick_kill 2 KILL
set +e
"$RFS" heal --volume "$VOL" >"$T/heal3.out" 2>&1
rc=$?
set -e
check "heal with brick 2 down exits 1 (rc $rc)" test "$rc" = 1
check "heal says a brick is down" grep -q "1 bricks down" "$T/heal3.out"
brick_start 2
log "reads through a new mount that prefers brick 3"
mount_volume mB "prefer-brick=3"
check "big file via brick 3" cmp "$A/new_dir/deep/deeper/big.bin" "$T/mB/new_dir/deep/deeper/big.bin"
check "trunc via brick 3" test "$(stat -c %s "$T/mB/trunc.bin")" = 1000
log "PASS"
