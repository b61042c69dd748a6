#!/usr/bin/env bash
# Objects marked dirty with nobody blamed (a change done by a minority, or
# cut off mid-way, leaves only that): heal compares the copies and takes the
# majority's version; with no majority the object becomes split-brain.
# Built by hand on the bricks (docs/brick-layout.md): dirty set with
# setfattr-like xattr writes, the heal index entry made, and
#  - d/a: 4 KiB of other bytes on brick 2 (dirty on brick 2);
#  - d: an extra file on brick 3 only, with its id and ids/ link (dirty on
#    brick 3's d);
#  - d/meta: another mode on brick 1 (dirty on brick 1);
#  - sb/c: different bytes on every brick (dirty on brick 1): split-brain.
# Before, heal only cleared dirty and left the copies different.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir "$A/d" "$A/sb"
head -c 300000 /dev/urandom >"$T/a.src"
cp "$T/a.src" "$A/d/a"
echo meta >"$A/d/meta"
chmod 0644 "$A/d/meta"
echo base >"$A/sb/c"
sync
unmount_volume "$A"
check "clean before" $HC clean "$T" 3

log "minority versions made by hand"
dd if=/dev/urandom of="$(brick_path 2 d/a)" bs=4096 count=1 seek=17 conv=notrunc 2>/dev/null
brick_set_dirty 2 d/a
brick_add_extra 3 d/extra
brick_set_dirty 3 d
chmod 0600 "$(brick_path 1 d/meta)"
brick_set_dirty 1 d/meta
echo "version two" >"$(brick_path 2 sb/c)"
echo "version three!" >"$(brick_path 3 sb/c)"
brick_set_dirty 1 sb/c
check "bricks differ before" bash -c "! $HC same '$T' 3 >/dev/null"

log "heal: the majority wins, no majority is split-brain"
set +e
"$RFS" heal --volume "$VOL" --json >"$T/heal.json" 2>&1
rc=$?
set -e
cat "$T/heal.json" >&2
check "heal exits 1 (split-brain left), rc $rc" test "$rc" = 1
check "one split-brain" grep -q '"split_brain":1,' "$T/heal.json"
check "d/a: brick 2 got the majority's bytes" cmp "$T/a.src" "$(brick_path 2 d/a)"
check "d/extra: removed from brick 3" test ! -e "$(brick_path 3 d/extra)"
check "d/meta: brick 1 got the majority's mode" \
    test "$(stat -c %a "$(brick_path 1 d/meta)")" = 644
"$RFS" split-brain list --volume "$VOL" >"$T/sb.out" 2>&1 || true
cat "$T/sb.out" >&2
check "split-brain list names sb/c" grep -q "/sb/c" "$T/sb.out"
for i in 1 2 3; do
    check "sb/c left alone on brick $i" test -s "$(brick_path "$i" sb/c)"
done
check "sb/c differs still" bash -c "! cmp -s '$(brick_path 2 sb/c)' '$(brick_path 3 sb/c)'"

log "split-brain resolve, then every brick is the same"
"$RFS" split-brain resolve /sb/c --volume "$VOL" --source-brick 3 >"$T/res.out" 2>&1 ||
    fail "resolve: $(cat "$T/res.out")"
"$RFS" heal --volume "$VOL" >"$T/heal2.out" 2>&1 || fail "heal after resolve: $(cat "$T/heal2.out")"
check "bricks equal" $HC same "$T" 3
check "no marker, empty heal indices" $HC clean "$T" 3
check "sb/c is brick 3's" test "$(cat "$(brick_path 1 sb/c)")" = "version three!"
log "PASS"
