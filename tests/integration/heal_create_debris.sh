#!/usr/bin/env bash
# A brick killed inside CREATE, after the new name got its id and before
# the ids/ link (ops_create.c invariant 1), keeps a name whose id leads
# nowhere.  Found by the soak (two_down, 1 cycle in 200): the folder's
# entry heal saw the same name with the same id on the sink and called it
# healed; the file, blamed for that brick, could not be found there by id,
# and its heal waited for ever for the entry heal to make it ("blamed for
# bricks 0x4, which are up and lack it"); brick 3 kept an empty file.
# Built by hand: d/f on every brick; brick 3's copy cut to that debris
# (empty, ids/ link gone); d and d/f blamed for brick 3 on bricks 1 and 2.
# Heal must leave d/f whole and equal on every brick.
# The same for a folder (bug 22: the soak's two_down met it twice in 66
# cycles, "blamed for bricks 0x4, which are up and lack it" on a folder
# whose parent's heal had "healed" brick 3 with nothing made): d/sub, cut
# on brick 3 to a folder with its id and no ids/ symlink.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
volume_start
mount_volume mA "ping-timeout=2"
mkdir "$T/mA/d"
head -c 249918 /dev/urandom >"$T/f.src"
cp "$T/f.src" "$T/mA/d/f"
mkdir "$T/mA/d/sub"
echo kept >"$T/mA/d/sub/g"
sync
unmount_volume "$T/mA"
check "clean before" $HC clean "$T" 3
brick_kill 3

for b in 1 2; do
    brick_blame "$b" d 0 0 1
    brick_blame "$b" d/f 0 0 1
    brick_blame "$b" d/sub 0 0 1
done
python3 - "$T/brick3" d/f <<'PY'
import os, struct, sys
root, rel = sys.argv[1], sys.argv[2]
p = os.path.join(root, rel)
hi, lo = struct.unpack("<QQ", os.getxattr(p, "trusted.rfs.id"))
hx = "%016x%016x" % (hi, lo)
os.unlink(os.path.join(root, ".replicafs/ids", hx[:2], hx))
os.truncate(p, 0)
# The folder as a mkdir killed before its ids/ symlink leaves it: empty.
p = os.path.join(root, "d/sub")
hi, lo = struct.unpack("<QQ", os.getxattr(p, "trusted.rfs.id"))
hx = "%016x%016x" % (hi, lo)
os.unlink(os.path.join(root, ".replicafs/ids", hx[:2], hx))
os.unlink(os.path.join(p, "g"))
PY
sleep 0.1 # the debris is older than brick 3's next start
brick_start 3

"$RFS_BIN_DIR/replicafs" heal --wait --timeout 10 --verbose --volume "$VOL" \
    >"$T/heal.log" 2>&1 || fail "heal --wait: $(tail -n 4 "$T/heal.log")"
log "heal: $(grep -v 'healed bricks' "$T/heal.log" | head -n 3 | tr '\n' ' ')"
for b in 1 2 3; do
    check "brick $b: d/f whole" cmp -s "$T/f.src" "$(brick_path "$b" d/f)"
done
check "one id for d/f everywhere" same_ids_on_bricks d/f
check "brick 3: d/sub/g made" test "$(cat "$(brick_path 3 d/sub/g)" 2>&1)" = kept
check "one id for d/sub everywhere" same_ids_on_bricks d/sub
check "bricks equal" $HC same "$T" 3
check "no marker nonzero, no index entry left" $HC clean "$T" 3
check "brick 3 logged the removal" grep -q "names left by a crash" "$T/brick3.log"
log PASS
