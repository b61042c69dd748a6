#!/usr/bin/env bash
# A constructed split-brain: three files whose copies differ on every brick,
# with pending markers set by hand so that bricks 1 and 2 blame each other
# and both blame brick 3 (no clean copy).  `replicafs heal` must not touch
# them and must exit 1; `split-brain list` names them; a fresh mount refuses
# to read them (EIO); `split-brain resolve` fixes each one a different way
# (--source-brick, --latest-mtime, --bigger-file) and the chosen copy ends
# up on every brick, with the markers cleared.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA

mkdir "$A/sb"
for f in by_brick by_mtime by_size ok; do echo "same $f" >"$A/sb/$f"; done
sync
sleep 1.5 # past the mount's post-op delay and its attribute cache

log "make the copies differ on each brick and blame each other by hand"
# by_brick: brick 2's copy will be chosen explicitly.
# by_mtime: brick 3's copy is the newest.  by_size: brick 1's is the biggest.
for i in 1 2 3; do
    for f in by_brick by_mtime by_size; do
        p=$(brick_path "$i" "sb/$f")
        case "$f:$i" in
        by_size:1) head -c 5000 /dev/urandom >"$p.tmp" ;;
        *) printf 'copy of %s on brick %d\n' "$f" "$i" >"$p.tmp" ;;
        esac
        # write in place: the brick's id link is a hard link to this inode
        cat "$p.tmp" >"$p"
        rm "$p.tmp"
        touch -d "2020-01-0$i 00:00:00" "$p"
        [ "$f" = by_mtime ] && [ "$i" = 3 ] && touch -d "2024-01-01 00:00:00" "$p"
        case $i in
        1) $HC setpend "$p" 0,1,1 ;;
        2) $HC setpend "$p" 1,0,1 ;;
        esac
        if [ "$i" != 3 ]; then
            touch "$T/brick$i/.replicafs/heal/$($HC idhex "$p")"
        fi
    done
done
for f in by_brick by_mtime by_size; do
    cp "$(brick_path 2 "sb/$f")" "$T/$f.b2"
    cp "$(brick_path 3 "sb/$f")" "$T/$f.b3"
    cp "$(brick_path 1 "sb/$f")" "$T/$f.b1"
done

log "heal skips split-brain and says so"
set +e
"$RFS" heal --volume "$VOL" --json >"$T/heal.out" 2>&1
rc=$?
set -e
cat "$T/heal.out" >&2
check "heal exits 1 (rc $rc)" test "$rc" = 1
check "heal counts 3 split-brain" grep -q '"split_brain":3' "$T/heal.out"
check "heal left brick 1's copy alone" cmp -s "$T/by_brick.b1" "$(brick_path 1 sb/by_brick)"

log "split-brain list"
set +e
"$RFS" split-brain list --volume "$VOL" >"$T/list.out" 2>&1
rc=$?
"$RFS" split-brain list --volume "$VOL" --json >"$T/list.json" 2>&1
set -e
cat "$T/list.out" >&2
check "list exits 1 (rc $rc)" test "$rc" = 1
for f in by_brick by_mtime by_size; do
    check "list names $f" grep -q "^/sb/$f " "$T/list.out"
done
check "list says 3" grep -q "^3 in split-brain" "$T/list.out"
check "json list" python3 -c "import json,sys; d=json.load(open('$T/list.json')); sys.exit(d['count']!=3)"

log "a fresh mount refuses to read them"
mount_volume mB
for f in by_brick by_mtime by_size; do
    if cat "$T/mB/sb/$f" >/dev/null 2>"$T/read.err"; then
        fail "read of $f in split-brain succeeded"
    fi
    check "read of $f: EIO ($(cat "$T/read.err"))" grep -q "Input/output error" "$T/read.err"
done
check "a healthy file still reads" test "$(cat "$T/mB/sb/ok")" = "same ok"

log "resolve each one a different way"
"$RFS" split-brain resolve /sb/by_brick --source-brick 2 --volume "$VOL" >"$T/r1.out" ||
    fail "resolve --source-brick: $(cat "$T/r1.out")"
check "resolve says brick 2" grep -q "resolved from brick 2" "$T/r1.out"
"$RFS" split-brain resolve sb/by_mtime --latest-mtime --volume "$VOL" >"$T/r2.out" ||
    fail "resolve --latest-mtime: $(cat "$T/r2.out")"
check "latest mtime is brick 3" grep -q "resolved from brick 3" "$T/r2.out"
"$RFS" split-brain resolve /sb/by_size --bigger-file --volume "$VOL" --json >"$T/r3.out" ||
    fail "resolve --bigger-file: $(cat "$T/r3.out")"
check "bigger file is brick 1" grep -q '"source_brick":1' "$T/r3.out"
for i in 1 2 3; do
    check "by_brick on brick $i is brick 2's" cmp -s "$T/by_brick.b2" "$(brick_path "$i" sb/by_brick)"
    check "by_mtime on brick $i is brick 3's" cmp -s "$T/by_mtime.b3" "$(brick_path "$i" sb/by_mtime)"
    check "by_size on brick $i is brick 1's" cmp -s "$T/by_size.b1" "$(brick_path "$i" sb/by_size)"
done
check "bricks equal" $HC same "$T" 3
check "markers clear" $HC clean "$T" 3
"$RFS" split-brain list --volume "$VOL" >"$T/list2.out" ||
    fail "split-brain list after resolve: $(cat "$T/list2.out")"
check "resolved file reads on a mount" cmp -s "$T/by_brick.b2" "$T/mB/sb/by_brick"

log "usage errors exit 2"
set +e
"$RFS" split-brain resolve /sb/ok --volume "$VOL" >/dev/null 2>&1
rc1=$?
"$RFS" split-brain resolve /sb/ok --latest-mtime --bigger-file --volume "$VOL" >/dev/null 2>&1
rc2=$?
"$RFS" split-brain resolve /sb/nonexistent --bigger-file --volume "$VOL" >/dev/null 2>&1
rc3=$?
set -e
check "no method: 2 (got $rc1)" test "$rc1" = 2
check "two methods: 2 (got $rc2)" test "$rc2" = 2
check "no such path: 2 (got $rc3)" test "$rc3" = 2
log "PASS"
